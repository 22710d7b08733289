// SPDX-License-Identifier: GPL-2.0
/*
 * vmcore-read: what a kdump capture kernel's /proc/vmcore holds, for the
 * kseries vmtest checks (busybox has no readelf, and dd cannot follow the
 * ELF program headers from physical addresses to file offsets).
 *
 *   vmcore-read [-f FILE] phdrs        one "START END PT_LOAD" line per
 *                                      PT_LOAD header (16 hex digits each,
 *                                      END inclusive), as vmtest.sh's range
 *                                      files hold them
 *   vmcore-read [-f FILE] read START END
 *                                      read physical START..END (inclusive,
 *                                      hex) from the dump, end to end, and
 *                                      say how much was read, how much of it
 *                                      is not zero, and what no PT_LOAD holds
 *
 * Exit: 0 done, 1 a read or the ELF header failed, 2 usage.
 * ELF64 only: the guests that have virtio-mem (x86_64, arm64) are 64-bit.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK		(1UL << 20)
#define PAGE		4096UL
#define MAX_PHDRS	4096

static Elf64_Phdr phdrs[MAX_PHDRS];
static unsigned char buf[CHUNK];

static int usage(void)
{
	fprintf(stderr, "usage: vmcore-read [-f FILE] phdrs | read START END\n");
	return 2;
}

static int fail(const char *what)
{
	fprintf(stderr, "vmcore-read: %s: %s\n", what, strerror(errno));
	return 1;
}

/* The PT_LOAD headers of the dump in FD, sorted as the kernel wrote them. */
static int load_headers(int fd, int *count)
{
	Elf64_Ehdr ehdr;
	ssize_t want;

	if (pread(fd, &ehdr, sizeof(ehdr), 0) != sizeof(ehdr))
		return fail("ELF header");
	if (memcmp(ehdr.e_ident, ELFMAG, SELFMAG) ||
	    ehdr.e_ident[EI_CLASS] != ELFCLASS64 ||
	    ehdr.e_phentsize != sizeof(Elf64_Phdr) || ehdr.e_phnum > MAX_PHDRS) {
		errno = EINVAL;
		return fail("not an ELF64 core with at most 4096 program headers");
	}
	want = (ssize_t)ehdr.e_phnum * (ssize_t)sizeof(Elf64_Phdr);
	if (pread(fd, phdrs, want, ehdr.e_phoff) != want)
		return fail("program headers");
	*count = ehdr.e_phnum;
	return 0;
}

static unsigned long nonzero_pages(const unsigned char *data, size_t len)
{
	unsigned long pages = 0;
	size_t off, i;

	for (off = 0; off < len; off += PAGE) {
		for (i = off; i < off + PAGE && i < len; i++) {
			if (data[i]) {
				pages++;
				break;
			}
		}
	}
	return pages;
}

static int print_headers(int count)
{
	int i;

	for (i = 0; i < count; i++) {
		if (phdrs[i].p_type != PT_LOAD || !phdrs[i].p_memsz)
			continue;
		printf("%016llx %016llx PT_LOAD\n",
		       (unsigned long long)phdrs[i].p_paddr,
		       (unsigned long long)(phdrs[i].p_paddr + phdrs[i].p_memsz - 1));
	}
	return 0;
}

/* Read the part of START..END (inclusive) that header PH holds. */
static int read_part(int fd, const Elf64_Phdr *ph, uint64_t start, uint64_t end,
		     uint64_t *read_bytes, unsigned long *pages)
{
	uint64_t first = start > ph->p_paddr ? start : ph->p_paddr;
	uint64_t last = ph->p_paddr + ph->p_filesz - 1;
	uint64_t addr;

	if (end < last)
		last = end;
	for (addr = first; addr <= last; addr += CHUNK) {
		size_t len = last - addr + 1 < CHUNK ? last - addr + 1 : CHUNK;
		off_t off = ph->p_offset + (addr - ph->p_paddr);
		ssize_t got = pread(fd, buf, len, off);

		if (got != (ssize_t)len) {
			fprintf(stderr, "vmcore-read: read of 0x%llx (+0x%zx) returned %zd: %s\n",
				(unsigned long long)addr, len, got,
				got < 0 ? strerror(errno) : "short read");
			return 1;
		}
		*read_bytes += len;
		*pages += nonzero_pages(buf, len);
	}
	return 0;
}

static int read_range(int fd, int count, uint64_t start, uint64_t end)
{
	uint64_t read_bytes = 0;
	unsigned long pages = 0;
	int i;

	for (i = 0; i < count; i++) {
		const Elf64_Phdr *ph = &phdrs[i];

		if (ph->p_type != PT_LOAD || !ph->p_filesz)
			continue;
		if (ph->p_paddr > end || ph->p_paddr + ph->p_filesz - 1 < start)
			continue;
		if (read_part(fd, ph, start, end, &read_bytes, &pages))
			return 1;
	}
	printf("read 0x%llx-0x%llx: 0x%llx of 0x%llx bytes (%llu MiB) from PT_LOAD data, %lu pages not zero\n",
	       (unsigned long long)start, (unsigned long long)end,
	       (unsigned long long)read_bytes, (unsigned long long)(end - start + 1),
	       (unsigned long long)(read_bytes >> 20), pages);
	return read_bytes == end - start + 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *file = "/proc/vmcore";
	int argi = 1, count = 0, fd, ret;

	if (argi + 1 < argc && !strcmp(argv[argi], "-f")) {
		file = argv[argi + 1];
		argi += 2;
	}
	if (argi >= argc)
		return usage();
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(file);
	ret = load_headers(fd, &count);
	if (!ret && !strcmp(argv[argi], "phdrs"))
		ret = print_headers(count);
	else if (!ret && !strcmp(argv[argi], "read") && argi + 2 < argc)
		ret = read_range(fd, count, strtoull(argv[argi + 1], NULL, 16),
				 strtoull(argv[argi + 2], NULL, 16));
	else if (!ret)
		ret = usage();
	close(fd);
	return ret;
}
