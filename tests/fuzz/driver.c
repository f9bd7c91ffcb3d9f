/* A stand-in for libFuzzer's main: runs every file named on the command line, and every regular
 * file in every directory named there, through LLVMFuzzerTestOneInput. Used to replay the seed
 * corpus (and crash reproducers) as an ordinary test, with any compiler. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define DRIVER_INPUT_MAX (1024 * 1024) /* larger inputs are skipped, as libFuzzer's -max_len */

/* Runs one file; -1 on a read error. Each input gets an exactly sized buffer, as libFuzzer's do. */
static int driver_file(int dirfd, const char *name, const char *shown)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", shown, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > DRIVER_INPUT_MAX) {
		close(fd);
		return 0;
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	size_t got = 0;
	while (buf && got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != size) {
		free(buf);
		fprintf(stderr, "%s: short read\n", shown);
		return -1;
	}
	/* A copy of exactly the input's size: an overread hits the allocator's redzone under ASan.
	 */
	uint8_t *exact = malloc(size ? size : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, size);
	free(buf);
	LLVMFuzzerTestOneInput(exact, size);
	free(exact);
	return 1;
}

int main(int argc, char **argv)
{
	size_t runs = 0;
	int bad = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			int r = driver_file(AT_FDCWD, argv[i], argv[i]);
			bad |= r < 0;
			runs += r > 0;
			continue;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char shown[4096];
			snprintf(shown, sizeof(shown), "%s/%s", argv[i], e->d_name);
			int r = driver_file(dirfd(d), e->d_name, shown);
			bad |= r < 0;
			runs += r > 0;
		}
		closedir(d);
	}
	printf("%zu inputs run\n", runs);
	if (runs == 0) {
		fprintf(stderr, "no inputs\n");
		return 1;
	}
	return bad ? 1 : 0;
}
