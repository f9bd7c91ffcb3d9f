/* mounts_json: JSON rendering of the registry for the admin and workload APIs: every known
 * container, and the names of the secrets an identity is granted. */
#include "broker/engine/mounts_int.h"

json_t *mounts_granted_json(mounts *m, const struct policy_identity *who)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	for (size_t i = 0; i < m->in.nsecrets; i++)
		if (policy_allows(m->in.grants, m->in.ngrants, who, m->in.names[i]))
			json_array_append_new(a, json_string(m->in.names[i]));
	return a;
}

json_t *mounts_list_json(mounts *m)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	for (struct mcont *c = m->conts; c; c = c->next) {
		json_t *labels = json_object();
		for (size_t i = 0; i < c->nlabels; i++)
			json_object_set_new(labels, c->labels[i].key,
			                    json_string(c->labels[i].value));
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:I, s:I, s:s, s:b, s:s?, s:I, "
		              "s:I, s:I, s:I, s:I, s:b}",
		              "id", c->id, "runtime", c->runtime, "name", c->name, "labels", labels,
		              "cgroup", c->cgroup, "pid", (int)c->pid, "uid", (json_int_t)c->uid,
		              "gid", (json_int_t)c->gid, "source", c->hook ? "hook" : "workload",
		              "mounted", c->fs != NULL, "mount", c->fs ? c->target : NULL, "files",
		              (json_int_t)c->nfiles, "opens", (json_int_t)c->opens, "denied",
		              (json_int_t)c->denied, "created", (json_int_t)c->created, "last_seen",
		              (json_int_t)c->last_seen, "failed_closed", c->failed);
		if (o)
			json_array_append_new(a, o);
	}
	return a;
}
