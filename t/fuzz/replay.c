/* SPDX-License-Identifier: MIT */
/*
 * fuzz_poold's inputs without libFuzzer, for `make check`: the harness
 * (fuzz_poold.c, built here with the project's compiler) writes its seeds
 * into a new directory, then every seed and every file named on the command
 * line runs once against the server in this process.  A crash, a sanitizer
 * report, or a server that stops answering fails the test; so does a harness
 * that no longer builds or starts.  The seeds cover every method, a node's
 * life and the admin port.
 *
 *   t/fuzz/replay [FILE...]
 */
#include "config.h"

#undef main /* the daemon's is renamed for the program, not this one */

#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static int
run_file(const char *path)
{
    static uint8_t buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "replay: %s: cannot open\n", path);
        return 1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int
main(int argc, char **argv)
{
    char top[256], dir[300], path[600];
    char *args[3];
    char **av = args;
    int ac = 2, runs = 0, bad = 0;
    struct dirent *e;
    DIR *d;

    /* the seeds and the server's data directory, all under one directory removed at the end */
    snprintf(top, sizeof(top), "%s/gx-replay.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(top) == NULL) {
        perror("replay: mkdtemp");
        return 1;
    }
    setenv("TMPDIR", top, 1);
    setenv("GX_FUZZ_HEALTH_EVERY", "1", 1);
    snprintf(dir, sizeof(dir), "%s/seeds", top);
    if (mkdir(dir, 0700) != 0) {
        perror("replay: mkdir");
        return 1;
    }
    args[0] = argv[0];
    args[1] = dir;
    args[2] = NULL;
    LLVMFuzzerInitialize(&ac, &av); /* starts the server, writes the seeds into dir */
    d = opendir(dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        bad += run_file(path);
        runs++;
    }
    if (d != NULL)
        closedir(d);
    for (int i = 1; i < argc; i++, runs++)
        bad += run_file(argv[i]);
    nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("replay: %d inputs run, the server answered a Health Check after each\n", runs);
    /* the server thread runs until the process ends; fuzz_poold.c checked it after every input */
    fflush(stdout);
    /* one seed a method and three more: fewer, and the harness lost its seeds */
    _exit(bad != 0 || runs < 20 ? 1 : 0);
}
