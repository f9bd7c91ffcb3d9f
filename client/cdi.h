/* cdi: `secretctl cdi generate`, a Container Device Interface spec for this install. Requesting
 * one of its devices (podman run --device secretd.io/secrets=NAME; CRI-O, containerd >= 1.7 with
 * enable_cdi, Docker >= 25) adds secretd-oci-hook's createRuntime and poststop hooks to that
 * container only: no hooks directory, no runtime wrapper. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define CDI_KIND "secretd.io/secrets"
#define CDI_VERSION "0.5.0"
#define CDI_DEVICE_ANY "any"    /* the device without a name: grants by label:, id:, ... */
#define CDI_DEVICE_NAME_MAX 128 /* bytes in a device (= container) name */
#define CDI_DEVICES_MAX 256     /* --name options */
#define CDI_HOOK_TIMEOUT 60     /* seconds for each hook (its client gives up at 30) */
#define CDI_ARGS "generate [--name NAME]... [--hook PATH] [--output FILE]"
#define CDI_USAGE "cdi " CDI_ARGS
#define CDI_HELP "write a CDI spec (devices " CDI_KIND "=NAME run the hooks)"

/* True when name (len bytes) is a CDI device name we accept: [A-Za-z0-9][A-Za-z0-9_.-]*, at
 * most CDI_DEVICE_NAME_MAX bytes, and not CDI_DEVICE_ANY. */
bool cdi_name_ok(const char *name, size_t len);

/* The spec: device CDI_DEVICE_ANY (hook --wants) and one device per names[i] (hook --name
 * NAME), each running hook (absolute) with --socket socket (absolute). *out is a new reference
 * (caller json_decref's). -EINVAL with *why (static) for a bad name, path or count; -ENOMEM. */
int cdi_spec_build(const char *hook, const char *socket, const char *const *names, size_t n,
                   json_t **out, const char **why);

/* cdi generate ...: argv[0] = "cdi"; the global --socket is socket (NULL: $SECRETD_SOCKET or
 * the default). Writes the spec to --output FILE (atomically, 0644) or stdout. 0 done, 1 the
 * hook is missing or the file could not be written, 2 usage. */
int cdi_main(int argc, char **argv, const char *socket);
