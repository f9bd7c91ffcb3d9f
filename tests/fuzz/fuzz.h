/* The libFuzzer entry point every tests/fuzz/fuzz_*.c defines (driver.c replays files into it). */
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
