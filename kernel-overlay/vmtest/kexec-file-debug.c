// SPDX-License-Identifier: GPL-2.0
/*
 * kexec-file-debug: load (or unload) a kernel with kexec_file_load(2) and
 * KEXEC_FILE_DEBUG, so that the kernel prints where it placed every segment
 * (and, on x86, the E820 map it hands over) to the kernel log.
 *
 * kexec-tools 2.0.25 prints no placement for "kexec -s"; this helper is the
 * smallest way to see what kexec_file_load() decided. Built static, it needs
 * nothing in the initramfs.
 *
 *   kexec-file-debug [-p] KERNEL [CMDLINE]   load (-p: as the crash kernel)
 *   kexec-file-debug [-p] -u                 unload
 *
 * Exit: 0 loaded/unloaded, 1 the syscall failed, 4 kexec_file_load() or
 * KEXEC_FILE_DEBUG is not supported by this kernel (kselftest skip), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef KEXEC_FILE_UNLOAD
#define KEXEC_FILE_UNLOAD	0x00000001
#endif
#ifndef KEXEC_FILE_ON_CRASH
#define KEXEC_FILE_ON_CRASH	0x00000002
#endif
#ifndef KEXEC_FILE_NO_INITRAMFS
#define KEXEC_FILE_NO_INITRAMFS	0x00000004
#endif
#ifndef KEXEC_FILE_DEBUG
#define KEXEC_FILE_DEBUG	0x00000008
#endif

#define KSFT_SKIP 4

static int usage(void)
{
	fprintf(stderr, "usage: kexec-file-debug [-p] KERNEL [CMDLINE] | [-p] -u\n");
	return 2;
}

static int fail(const char *what)
{
	int err = errno;

	fprintf(stderr, "kexec-file-debug: %s: %s\n", what, strerror(err));
	/* ENOSYS: no kexec_file_load(); EINVAL on an old kernel: no KEXEC_FILE_DEBUG */
	return err == ENOSYS ? KSFT_SKIP : 1;
}

int main(int argc, char **argv)
{
	unsigned long flags = KEXEC_FILE_DEBUG;
	const char *cmdline = "";
	int argi = 1;
	long ret;
	int fd;

	if (argi < argc && !strcmp(argv[argi], "-p")) {
		flags |= KEXEC_FILE_ON_CRASH;
		argi++;
	}
	if (argi >= argc)
		return usage();
	if (!strcmp(argv[argi], "-u")) {
		ret = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL,
			      flags | KEXEC_FILE_UNLOAD);
		return ret ? fail("kexec_file_load(UNLOAD)") : 0;
	}
	if (argi + 1 < argc)
		cmdline = argv[argi + 1];
	fd = open(argv[argi], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(argv[argi]);
	/* the length includes the terminating NUL, as the syscall wants */
	ret = syscall(SYS_kexec_file_load, fd, -1, strlen(cmdline) + 1, cmdline,
		      flags | KEXEC_FILE_NO_INITRAMFS);
	close(fd);
	return ret ? fail("kexec_file_load") : 0;
}
