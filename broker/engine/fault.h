/* fault: fault-injection points of the engine, compiled into every build. engine_fault(point)
 * returns 0 unless a test installed a hook (broker/engine/fault_test.h): production code never
 * sets one (the daemon only with SECRETD_TEST_FAULTS=1 and a fault file, see main.c). */
#pragma once

enum engine_fault_point {
	ENGINE_FAULT_VIEW_INPUTS,    /* mounts reads grants and names for a refresh */
	ENGINE_FAULT_AUDIT_RECORD,   /* service writes a record of its own (a failure, an attach) */
	ENGINE_FAULT_UNMOUNT,        /* mounts unmounts a live container's mount (detach) */
	ENGINE_FAULT_REGISTRY_WRITE, /* mounts writes a container's registry row (attach, mount) */
	ENGINE_FAULT_POINTS,         /* the number of points */
};

/* 0, or the -errno the installed hook injects at point p. */
int engine_fault(enum engine_fault_point p);
