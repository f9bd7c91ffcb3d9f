/* main_int.h: what broker/main.c and broker/main_keeper.c share (the daemon's top level). */
#pragma once

/* Runs `secretd run` as the keeper (broker/keeper/keeper.h) of a worker exec'd with the same argv;
 * returns the process's exit status. */
int main_keeper(char **argv, const char *state_dir);
