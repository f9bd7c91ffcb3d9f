#include "broker/engine/fault.h"

#include "broker/engine/fault_test.h"

int (*engine_fault_hook)(enum engine_fault_point p, void *ud);
void *engine_fault_ud;

int engine_fault(enum engine_fault_point p)
{
	return engine_fault_hook ? engine_fault_hook(p, engine_fault_ud) : 0;
}
