#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# kseries vmtest: the kexec contract for driver-managed (virtio-mem) memory,
# checked inside the guest with the real kexec-tools and makedumpfile. Output
# is TAP 13 as kselftest prints it; every check ends in a kselftest code (0
# pass, 1 fail, 4 skip; a skip says why). One QEMU run is one scenario
# (vmtest.mode=); a scenario may go through several kernels (kexec -e, a
# crash into the capture kernel): the first kernel prints the plan, the next
# ones go on numbering from vmtest.next=, so the host reads one TAP stream.
#
# vmtest.mode=test: for each phase (vmtest.phases=boot:256,grow:512,shrink:128,
# the virtio-mem size in MiB per phase) the guest checks:
#
#   iomem_virtio_mem            the plugged memory is "System RAM (virtio_mem)"
#                               in /proc/iomem, as much as requested (whole
#                               memory blocks)
#   memmap_excludes_virtio_mem  no /sys/firmware/memmap entry overlaps it
#   kexec_load_segments         kexec -l (kexec_load) puts no segment on it
#   kexec_load_memmap           nor into the E820 map it hands over
#   kexec_file_segments         kexec_file_load puts no segment on it (placement
#                               from KEXEC_FILE_DEBUG lines in the kernel log)
#   kdump_dumps_virtio_mem      kexec -p: the ELF core headers cover it
#
# and once, in the boot phase before any kexec load, mem_on_off_test (the
# tree's memory-hotplug selftest), and after the last phase dmesg_clean.
# (x86's kexec_file hands over e820_table_kexec, which memory hotplug never
# updates: a load-time check of that map could not fail, so what the next
# kernel really gets is checked after the reboot below.)
#
# Then the same kernel reboots into itself with kexec -l + kexec -e
# (kexec_load_reboot), that one with kexec -s -l + kexec -e
# (kexec_file_reboot); QEMU keeps the virtio-mem device plugged across kexec,
# so each new kernel checks:
#
#   memmap_excludes_virtio_mem  the map it booted with (x86: the e820 table it
#                               logged, and /sys/firmware/memmap) has no RAM in
#                               the device region
#   iomem_no_plain_ram_in_device  no plain "System RAM" there in /proc/iomem
#   driver_replugged            virtio-mem found memory still plugged, unplugged
#                               it and plugged the requested size again, every
#                               block online
#   dmesg_clean                 no WARNING, BUG or Oops in its log
#
# The last one resizes the device to vmtest.kdump_size (not a multiple of the
# memory block size: a block is partly plugged), loads a capture kernel with
# kexec -p (kdump_load: iomem_virtio_mem, kdump_dumps_virtio_mem) and crashes.
# vmtest.mode=kdump_file does the same with kexec -s -p (capture_loaded);
# vmtest.mode=crash_hotplug loads with kexec -s -p first, then grows and
# shrinks the device (vmtest.hotplug_sizes=), then crashes. The capture kernel
# checks:
#
#   vmcore_covers_virtio_mem    /proc/vmcore's PT_LOAD headers (the host checks
#                               them against what was plugged at the crash)
#   vmcore_reads_plugged        every PT_LOAD byte in the device region reads
#                               end to end; the host then checks that the
#                               device's backing memory holds exactly what was
#                               plugged (the virtio-mem vmcore callback kept
#                               the reads off unplugged memory)
#   makedumpfile_ok             makedumpfile -c -d 31 writes a dump
#   dmesg_clean
#
# vmtest.mode=control: the tree's kexec kselftests (test_kexec_load.sh,
# test_kexec_file_load.sh; each one result, a skip with its reason), then
# memory hot-added through the probe interface (not driver managed) must get a
# firmware memmap entry and be in the kexec_load map: proof that those checks
# can see what they look for. It runs alone: the probed block has nothing
# behind it, a kexec'd kernel would use it.
#
# Requests to the host (it serves them through QMP):
#   # vmtest-request: requested-size=BYTES   resize the device
#   # vmtest-request: backend-usage=PHASE    measure the device's backing memory
#   # vmtest-request: crash=PHASE            the next panic is on purpose
# Addresses go to the host as diagnostic lines:
#   # vmtest-range SET 0xSTART-0xEND [LABEL]
#   # vmtest-segment SET 0xSTART-0xEND [LABEL]

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

KERNEL=/boot/vmlinuz
INITRD=/boot/initrd.cpio	# this initramfs without itself, for the next kernel
KEXEC=/usr/sbin/kexec
KEXEC_FILE=/vmtest/kexec-file-debug
VMCORE_READ=/vmtest/vmcore-read
MAKEDUMPFILE=/usr/bin/makedumpfile
SELFTEST=/selftests/memory-hotplug/mem-on-off-test.sh
MEMORY=/sys/devices/system/memory
MEMMAP=/sys/firmware/memmap
CMDLINE=/proc/cmdline	# the host's tests point these at files of their own
DEVICE_TREE=/proc/device-tree
DEBUGFS=/sys/kernel/debug
W=/tmp/vmtest
NEXT_CMDLINE="console=ttyS0 vmtest.mode=probe"
CAPTURE_ARGS="irqpoll nr_cpus=1 reset_devices"
VIRTIO_MEM_NAME="System RAM (virtio_mem)"

PHASE_CHECKS=6
REBOOT_CHECKS=4
CAPTURE_CHECKS=4
KDUMP_CHECKS=2		# before the crash: iomem_virtio_mem and the load
CONTROL_CHECKS=5	# the kexec kselftests, the two controls, dmesg_clean
KEXEC_SELFTESTS=/selftests/kexec

test_number=0
failed=0

param() {
	sed -n "s/.*vmtest\.$1=\([^ ]*\).*/\1/p" $CMDLINE
}

# A range file holds "START END LABEL" lines, START and END as 16 hex digits
# (so that sort orders them), inclusive.
range_line() {
	printf '%016x %016x %s\n' "$1" "$2" "$3"
}

emit() { # KIND SET FILE: the ranges for the host
	while read -r s e label; do
		printf 'vmtest-%s %s 0x%x-0x%x %s\n' "$1" "$2" "0x$s" "0x$e" "$label"
	done < "$3"
}

range_bytes() { # FILE: total size of its ranges
	total=0
	while read -r s e label; do
		total=$((total + 0x$e - 0x$s + 1))
	done < "$1"
	echo $total
}

overlaps() { # FILE_A FILE_B: every pair of overlapping ranges, one per line
	while read -r as ae alabel; do
		while read -r bs be blabel; do
			if [ $((0x$as <= 0x$be && 0x$bs <= 0x$ae)) = 1 ]; then
				printf '0x%x-0x%x (%s) overlaps 0x%x-0x%x (%s)\n' \
					"0x$as" "0x$ae" "$alabel" "0x$bs" "0x$be" "$blabel"
			fi
		done < "$2"
	done < "$1"
}

disjoint() { # FILE REFERENCE: print what of FILE overlaps REFERENCE; true if nothing
	overlaps "$1" "$2" > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
}

uncovered() { # START END FILE: the first address of START..END no range covers
	cur=$((0x$1))
	sort "$3" > $W/sorted
	while read -r s e label; do
		if [ $((0x$s <= cur && 0x$e >= cur)) = 1 ]; then
			cur=$((0x$e + 1))
		fi
	done < $W/sorted
	if [ $((cur <= 0x$2)) = 1 ]; then
		printf '0x%x\n' $cur
	fi
}

iomem_ranges() { # NAME: the /proc/iomem ranges called exactly NAME
	sed -n 's/^ *\([0-9a-f]*\)-\([0-9a-f]*\) : \(.*\)$/\1 \2 \3/p' /proc/iomem |
	while read -r s e name; do
		if [ "$name" = "$1" ]; then
			range_line "0x$s" "0x$e" "$name"
		fi
	done
}

top_level_iomem() {
	sed -n 's/^\([0-9a-f]*\)-\([0-9a-f]*\) : \(.*\)$/\1 \2 \3/p' /proc/iomem |
	while read -r s e name; do
		range_line "0x$s" "0x$e" "$name"
	done
}

firmware_memmap() {
	for entry in "$MEMMAP"/*; do
		[ -f "$entry/start" ] || continue
		range_line "$(cat "$entry/start")" "$(cat "$entry/end")" "$(cat "$entry/type")"
	done
}

# "segment[N].mem   = 0x..." and "segment[N].memsz = 0x..." from kexec --debug
kexec_tools_segments() { # OUTPUT_FILE
	sed -n 's/^segment\[\([0-9]*\)\]\.mem *= 0x\([0-9a-f]*\)$/\1 \2/p' "$1" |
	while read -r index mem; do
		size=$(sed -n "s/^segment\[$index\]\.memsz *= 0x\([0-9a-f]*\)\$/\1/p" "$1")
		range_line "0x$mem" "$((0x$mem + 0x$size - 1))" "segment[$index]"
	done
}

# "kexec_file: segment[N]: buf=... bufsz=... mem=0x... memsz=0x..." in the
# kernel log (KEXEC_FILE_DEBUG)
kexec_file_segments() { # DMESG_FILE
	sed -n 's/.*kexec_file: segment\[\([0-9]*\)\]: .* mem=0x\([0-9a-f]*\) memsz=0x\([0-9a-f]*\)$/\1 \2 \3/p' \
		"$1" |
	while read -r index mem size; do
		range_line "0x$mem" "$((0x$mem + 0x$size - 1))" "segment[$index]"
	done
}

# The PT_LOAD program headers kexec -p --debug prints for the ELF core header:
# "Elf header: p_type = 1, p_offset = ... p_paddr = 0x... ... p_memsz = 0x..."
# (what a dump will contain; the "Kernel text" header only repeats RAM)
kdump_pt_load() { # OUTPUT_FILE
	sed -n 's/^Elf header: p_type = 1, .* p_paddr = 0x\([0-9a-f]*\) .* p_memsz = 0x\([0-9a-f]*\)$/\1 \2/p' \
		"$1" |
	while read -r addr size; do
		range_line "0x$addr" "$((0x$addr + 0x$size - 1))" "PT_LOAD"
	done
}

# The "E820 memmap:" table kexec-tools (kexec_load) or the kernel (kexec_file)
# prints, one "START-END (TYPE)" line per entry, TYPE 1 is RAM. PREFIX is a
# regular expression for what precedes each line (the kernel log's prefix).
e820_table() { # OUTPUT_FILE PREFIX
	awk -v p="^$2" '
		$0 ~ p "E820 memmap:$" { on = 1; next }
		on && $0 ~ p "[0-9a-f]+-[0-9a-f]+ [(][0-9]+[)]$" { print; next }
		{ on = 0 }' "$1" |
	sed -n 's/.*[^0-9a-f]\{0,1\}\([0-9a-f]\{16\}\)-\([0-9a-f]\{16\}\) (\([0-9]*\))$/\1 \2 \3/p' |
	while read -r s e type; do
		range_line "0x$s" "0x$e" "e820 type $type"
	done
}

result() { # CODE NAME OUTPUT_FILE
	test_number=$((test_number + 1))
	case $1 in
	"$KSFT_PASS") echo "ok $test_number $2" ;;
	"$KSFT_SKIP") echo "ok $test_number $2 # SKIP $(tail -n 1 "$3")" ;;
	*) echo "not ok $test_number $2"; failed=1 ;;
	esac
}

run_test() { # NAME FUNCTION [ARGS]: diagnostics first, then the result line
	name=$1
	shift
	"$@" > $W/out 2>&1
	code=$?
	sed 's/^/# /' $W/out
	result $code "$name" $W/out
}

need_virtio_mem() {
	if [ ! -s $W/virtio_mem ]; then
		echo "no virtio-mem memory in /proc/iomem to check against"
		return $KSFT_SKIP
	fi
}

block_bytes() {
	echo $((0x$(cat $MEMORY/block_size_bytes)))
}

# virtio-mem adds whole memory blocks and plugs parts of them (device blocks):
# /proc/iomem shows the size asked for rounded up to memory blocks
whole_blocks() { # BYTES
	block=$(block_bytes)
	echo $((($1 + block - 1) / block * block))
}

check_iomem_virtio_mem() { # WANT_BYTES
	want=$(whole_blocks "$1")
	waited=0
	while :; do
		iomem_ranges "$VIRTIO_MEM_NAME" > $W/virtio_mem
		have=$(range_bytes $W/virtio_mem)
		[ "$have" = "$want" ] && break
		[ $waited -ge "$PLUG_TIMEOUT" ] && break
		sleep 1
		waited=$((waited + 1))
	done
	emit range virtio_mem $W/virtio_mem
	echo "\"$VIRTIO_MEM_NAME\": $((have >> 20)) MiB, requested $(($1 >> 20)) MiB in $((want >> 20)) MiB of memory blocks (waited ${waited} s)"
	if [ "$have" != "$want" ]; then
		grep -i virtio /proc/iomem
		return $KSFT_FAIL
	fi
}

# memblock as the kernel keeps it (ARCH_KEEP_MEMBLOCK, debugfs), regions not
# flagged DRV_MNG: what arm64's kexec_file builds the next kernel's memory from
plain_memblock() {
	debug=$DEBUGFS
	[ -f $debug/memblock/memory ] || mount -t debugfs debugfs $debug 2> /dev/null
	[ -f $debug/memblock/memory ] || return 0
	sed -n 's/^ *[0-9]*: 0x\([0-9a-f]*\)\.\.0x\([0-9a-f]*\) *[0-9x]* \(.*\)$/\1 \2 \3/p' \
		$debug/memblock/memory |
	while read -r s e flags; do
		case $flags in
		*DRV_MNG*) ;;
		*) range_line "0x$s" "0x$e" "memblock $flags" ;;
		esac
	done
}

# The device tree's /memory nodes (QEMU virt: two address and two size cells)
dt_memory() {
	for node in "$DEVICE_TREE"/memory*; do
		[ -f "$node/reg" ] || continue
		hex=$(od -An -v -tx1 "$node/reg" | tr -d ' \n')
		while [ ${#hex} -ge 32 ]; do
			start=$(echo "$hex" | cut -c1-16)
			size=$(echo "$hex" | cut -c17-32)
			hex=$(echo "$hex" | cut -c33-)
			range_line "0x$start" $((0x$start + 0x$size - 1)) "dt ${node##*/}"
		done
	done
}

check_memmap() {
	if [ ! -d $MEMMAP ] && [ "$(uname -m)" != x86_64 ]; then
		# no firmware memmap off x86: the map kexec_file reads is memblock
		plain_memblock > $W/memblock
		emit range memblock $W/memblock
		if [ ! -s $W/memblock ]; then
			echo "no $MEMMAP and no /sys/kernel/debug/memblock/memory to check"
			return $KSFT_FAIL
		fi
		need_virtio_mem || return
		disjoint $W/memblock $W/virtio_mem
		return
	fi
	if [ ! -d $MEMMAP ]; then
		echo "no $MEMMAP (CONFIG_FIRMWARE_MEMMAP)"
		return $KSFT_FAIL
	fi
	firmware_memmap > $W/memmap
	emit range memmap $W/memmap
	need_virtio_mem || return
	disjoint $W/memmap $W/virtio_mem
}

kexec_load() { # kexec -l through kexec_load(), debug output to $W/kexec_load.out
	$KEXEC --kexec-syscall -l $KERNEL --command-line="$NEXT_CMDLINE" --debug \
		> $W/kexec_load.out 2>&1
	code=$?
	$KEXEC --kexec-syscall -u > /dev/null 2>&1
	if [ $code != 0 ]; then
		tail -n 20 $W/kexec_load.out
		echo "kexec -l failed (exit $code)"
	fi
	return $code
}

check_kexec_load_segments() {
	kexec_load || return $KSFT_FAIL
	kexec_tools_segments $W/kexec_load.out > $W/segments
	emit segment kexec_load $W/segments
	if [ ! -s $W/segments ]; then
		echo "kexec --debug printed no segments"
		return $KSFT_FAIL
	fi
	need_virtio_mem || return
	disjoint $W/segments $W/virtio_mem
}

check_kexec_load_memmap() {
	if [ ! -s $W/kexec_load.out ]; then
		echo "kexec -l did not run"
		return $KSFT_FAIL
	fi
	if [ "$(uname -m)" != x86_64 ]; then
		echo "kexec-tools hands a $(uname -m) kernel the device tree it booted with, no E820 map: the next kernel's map is checked after the kexec_load reboot"
		return $KSFT_SKIP
	fi
	e820_table $W/kexec_load.out "" > $W/e820
	emit range kexec_load_memmap $W/e820
	if [ ! -s $W/e820 ]; then
		echo "kexec --debug printed no E820 memmap"
		return $KSFT_FAIL
	fi
	need_virtio_mem || return
	disjoint $W/e820 $W/virtio_mem
}

check_kexec_file_segments() { # PHASE
	marker="vmtest: kexec_file_load $1"
	echo "$marker" > /dev/kmsg
	$KEXEC_FILE $KERNEL "$NEXT_CMDLINE"
	code=$?
	dmesg | sed -n "/$marker/,\$p" > $W/kexec_file.out
	$KEXEC_FILE -u
	[ $code = 0 ] || return $code
	kexec_file_segments $W/kexec_file.out > $W/segments
	emit segment kexec_file $W/segments
	if [ ! -s $W/segments ]; then
		echo "the kernel logged no kexec_file segments (KEXEC_FILE_DEBUG)"
		return $KSFT_FAIL
	fi
	need_virtio_mem || return
	disjoint $W/segments $W/virtio_mem
}

check_kdump() { # [CMDLINE]: with one, the capture kernel stays loaded
	if ! grep -q "Crash kernel" /proc/iomem; then
		echo "no crashkernel= reservation in /proc/iomem"
		return $KSFT_SKIP
	fi
	if [ -n "${1:-}" ]; then
		$KEXEC --kexec-syscall -p $KERNEL --initrd=$INITRD --command-line="$1" \
			--debug > $W/kdump.out 2>&1
		code=$?
	else
		$KEXEC --kexec-syscall -p $KERNEL --command-line="$NEXT_CMDLINE" --debug \
			> $W/kdump.out 2>&1
		code=$?
		$KEXEC --kexec-syscall -p -u > /dev/null 2>&1
	fi
	if [ $code != 0 ]; then
		tail -n 20 $W/kdump.out
		echo "kexec -p failed (exit $code)"
		return $KSFT_FAIL
	fi
	kexec_tools_segments $W/kdump.out > $W/segments
	emit segment kdump $W/segments
	# PT_LOAD program headers of the ELF core header: what a dump will contain
	kdump_pt_load $W/kdump.out > $W/dumped
	emit range kdump_pt_load $W/dumped
	# what must be dumped: the online memory blocks in the device's region, from
	# sysfs, not /proc/iomem's names (kexec-tools reads those: a name it does not
	# take is the bug this check is for, so it cannot also say what to cover)
	online_device_blocks > $W/hotplugged
	emit range online_device_blocks $W/hotplugged
	if [ ! -s $W/hotplugged ]; then
		echo "no online memory block in the virtio-mem device's region"
		return $KSFT_SKIP
	fi
	: > $W/bad
	while read -r s e label; do
		hole=$(uncovered "$s" "$e" $W/dumped)
		if [ -n "$hole" ]; then
			echo "0x$s-0x$e ($label) is not dumped from $hole on" >> $W/bad
		fi
	done < $W/hotplugged
	cat $W/bad
	[ ! -s $W/bad ]
}

online_device_blocks() { # the online memory blocks inside the device region
	device_region > $W/device || return 0
	read -r ds de _ < $W/device
	block=$(block_bytes)
	for dir in "$MEMORY"/memory*; do
		[ -f "$dir/phys_index" ] && [ "$(cat "$dir/state")" = online ] || continue
		start=$((0x$(cat "$dir/phys_index") * block))
		end=$((start + block - 1))
		if [ $((start >= 0x$ds && end <= 0x$de)) = 1 ]; then
			range_line $start $end "${dir##*/}"
		fi
	done
}

check_mem_on_off() {
	if [ ! -f $SELFTEST ]; then
		echo "$SELFTEST is not in the initramfs"
		return $KSFT_SKIP
	fi
	bash $SELFTEST > $W/selftest.out 2>&1
	code=$?
	cat $W/selftest.out
	case $code in
	"$KSFT_PASS") ;;
	"$KSFT_SKIP") grep -i skip $W/selftest.out | tail -n 1 ;;
	*) echo "mem-on-off-test.sh exited with $code" ;;
	esac
	return $code
}

run_phase() { # NAME MIB
	want=$(($2 * 1024 * 1024))
	if [ "$1" != boot ]; then
		echo "# vmtest-request: requested-size=$want"
	fi
	run_test "$1.iomem_virtio_mem" check_iomem_virtio_mem $want
	if [ "$1" = boot ]; then
		# once, on the fresh system, as kselftest would run it: after kexec
		# loads, memory blocks may hold pages that cannot be migrated
		run_test "$1.mem_on_off_test" check_mem_on_off
	fi
	run_test "$1.memmap_excludes_virtio_mem" check_memmap
	run_test "$1.kexec_load_segments" check_kexec_load_segments
	run_test "$1.kexec_load_memmap" check_kexec_load_memmap
	run_test "$1.kexec_file_segments" check_kexec_file_segments "$1"
	run_test "$1.kdump_dumps_virtio_mem" check_kdump
}

check_probe_memmap() {
	if [ ! -w $MEMORY/probe ]; then
		echo "no $MEMORY/probe (CONFIG_ARCH_MEMORY_PROBE)"
		return $KSFT_SKIP
	fi
	block=$((0x$(cat $MEMORY/block_size_bytes)))
	device_end=$(sed -n 's/^[0-9a-f]*-\([0-9a-f]*\) : virtio[0-9]*$/\1/p' /proc/iomem | tail -n 1)
	if [ -z "$device_end" ]; then
		echo "no virtio-mem device region in /proc/iomem to probe after"
		return $KSFT_SKIP
	fi
	addr=$(((0x$device_end + block) / block * block))
	range_line $addr $((addr + block - 1)) "probe" > $W/probe
	top_level_iomem > $W/iomem
	overlaps $W/probe $W/iomem > $W/bad
	if [ -s $W/bad ]; then
		cat $W/bad
		echo "no free memory block after the virtio-mem device"
		return $KSFT_SKIP
	fi
	# keep it offline: nothing backs it, it is only there to be described
	echo offline > $MEMORY/auto_online_blocks
	if ! printf '0x%x' $addr > $MEMORY/probe; then
		echo "probing 0x$(printf %x $addr) failed"
		return $KSFT_FAIL
	fi
	emit range probe $W/probe
	iomem_ranges "System RAM" > $W/ram
	emit range probe_iomem_system_ram $W/ram
	firmware_memmap > $W/memmap
	emit range memmap $W/memmap
	read -r s e label < $W/probe
	grep -q "^$s $e System RAM\$" $W/memmap || {
		echo "no firmware memmap entry 0x$s-0x$e System RAM for probed memory"
		return $KSFT_FAIL
	}
	grep -q "^$s $e System RAM\$" $W/ram || {
		echo "probed memory is not plain \"System RAM\" in /proc/iomem"
		return $KSFT_FAIL
	}
}

check_probe_kexec_load_memmap() {
	if [ ! -s $W/probe ]; then
		echo "nothing was probed"
		return $KSFT_SKIP
	fi
	kexec_load || return $KSFT_FAIL
	e820_table $W/kexec_load.out "" | grep " e820 type 1\$" > $W/e820
	emit range kexec_load_memmap $W/e820
	read -r s e label < $W/probe
	hole=$(uncovered "$s" "$e" $W/e820)
	if [ -n "$hole" ]; then
		echo "probed memory 0x$s-0x$e is not RAM in the kexec_load map from $hole on"
		return $KSFT_FAIL
	fi
}

check_dmesg() {
	dmesg > $W/dmesg
	grep -E "WARNING:|BUG:|Oops|Kernel panic|Call Trace:" $W/dmesg > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
}

# --- after a kexec reboot, and in the capture kernel ------------------------

# The device region as the first kernel found it ("virtioN" in /proc/iomem),
# passed on as vmtest.device=START-END: a kernel that booted with RAM there
# would not even get the region for the driver.
device_region() {
	region=$(param device)
	if [ -z "$region" ]; then
		region=$(sed -n 's/^\([0-9a-f]*\)-\([0-9a-f]*\) : virtio[0-9]*$/\1-\2/p' /proc/iomem | head -n 1)
	fi
	[ -n "$region" ] || return 1
	range_line "0x${region%-*}" "0x${region#*-}" device
}

# THIS kernel's boot memory map, RAM only: the e820 table it logged (what
# kexec handed over) and /sys/firmware/memmap on x86; the device tree's
# /memory nodes and plain memblock regions on arm64
boot_ram() {
	dmesg | sed -n 's/.*BIOS-e820: \[mem 0x\([0-9a-f]*\)-0x\([0-9a-f]*\)\] usable.*/\1 \2/p' |
	while read -r s e; do
		range_line "0x$s" "0x$e" "e820 usable"
	done
	firmware_memmap | grep " System RAM\$" || :
	dt_memory
	plain_memblock
}

check_boot_memmap() {
	device_region > $W/virtio_mem || { echo "no virtio-mem device region known"; return $KSFT_FAIL; }
	emit range virtio_mem $W/virtio_mem
	boot_ram > $W/boot_ram
	emit range boot_memmap $W/boot_ram
	if [ ! -s $W/boot_ram ]; then
		echo "found no boot RAM (e820 log, firmware memmap, device tree, memblock)"
		return $KSFT_FAIL
	fi
	disjoint $W/boot_ram $W/virtio_mem
}

check_no_plain_ram() {
	device_region > $W/virtio_mem || { echo "no virtio-mem device region known"; return $KSFT_FAIL; }
	emit range virtio_mem $W/virtio_mem
	iomem_ranges "System RAM" > $W/ram
	emit range iomem_system_ram $W/ram
	disjoint $W/ram $W/virtio_mem
}

offline_blocks() { # RANGE_FILE: memory blocks inside the ranges that are not online
	block=$(block_bytes)
	for dir in "$MEMORY"/memory*; do
		[ -f "$dir/phys_index" ] || continue
		start=$((0x$(cat "$dir/phys_index") * block))
		range_line $start $((start + block - 1)) "${dir##*/}" > $W/block
		if [ -n "$(overlaps $W/block "$1")" ] && [ "$(cat "$dir/state")" != online ]; then
			echo "${dir##*/} is $(cat "$dir/state")"
		fi
	done
}

check_replugged() {
	dmesg | grep -E "virtio_mem virtio[0-9]+: (unplugging all|plugged size|requested size)" |
		tail -n 4
	if ! dmesg | grep -q "virtio_mem virtio[0-9]*: unplugging all memory is required"; then
		echo "the driver did not find memory still plugged (no \"unplugging all memory is required\")"
		return $KSFT_FAIL
	fi
	check_iomem_virtio_mem "$REQUESTED" || return $KSFT_FAIL
	offline_blocks $W/virtio_mem > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
}

# The capture kernel's view of the device: "start address" and "region size"
# as the driver logged them (it does not plug or unplug in a kdump kernel)
capture_device_region() {
	start=$(dmesg | sed -n 's/.*virtio_mem virtio[0-9]*: start address: 0x\([0-9a-f]*\).*/\1/p' | head -n 1)
	size=$(dmesg | sed -n 's/.*virtio_mem virtio[0-9]*: region size: 0x\([0-9a-f]*\).*/\1/p' | head -n 1)
	[ -n "$start" ] && [ -n "$size" ] || return 1
	range_line "0x$start" $((0x$start + 0x$size - 1)) device
}

check_vmcore_headers() {
	if [ ! -r /proc/vmcore ]; then
		echo "no /proc/vmcore: not a capture kernel"
		return $KSFT_FAIL
	fi
	$VMCORE_READ phdrs > $W/dumped || return $KSFT_FAIL
	emit range vmcore_pt_load $W/dumped
	capture_device_region > $W/device || {
		echo "the virtio-mem driver logged no device region in the capture kernel"
		return $KSFT_FAIL
	}
	emit range device $W/device
	: > $W/inside
	while read -r s e label; do
		range_line "0x$s" "0x$e" "$label" > $W/one
		[ -n "$(overlaps $W/one $W/device)" ] && cat $W/one >> $W/inside
	done < $W/dumped
	echo "$(wc -l < $W/dumped) PT_LOAD headers, $(wc -l < $W/inside) of them in the device region"
	# what was plugged at the crash is the first kernel's: the host checks
	# these headers against its last iomem_virtio_mem
	[ -s $W/inside ]
}

check_vmcore_reads() { # PHASE
	[ -s $W/inside ] || { echo "no PT_LOAD header in the device region"; return $KSFT_FAIL; }
	read -r ds de dlabel < $W/device
	code=0
	while read -r s e label; do
		[ $((0x$s < 0x$ds)) = 1 ] && s=$ds
		[ $((0x$e > 0x$de)) = 1 ] && e=$de
		$VMCORE_READ read "$s" "$e" || code=$KSFT_FAIL
	done < $W/inside
	echo "# vmtest-request: backend-usage=$1" >&3
	sleep 1	# the host measures now; nothing here touches the device meanwhile
	return $code
}

check_makedumpfile() {
	if [ ! -x $MAKEDUMPFILE ]; then
		echo "$MAKEDUMPFILE is not in the initramfs"
		return $KSFT_FAIL
	fi
	$MAKEDUMPFILE -c -d 31 /proc/vmcore $W/dump > $W/makedumpfile.out 2>&1
	code=$?
	tail -n 5 $W/makedumpfile.out
	if [ $code != 0 ]; then
		echo "makedumpfile -c -d 31 exited with $code"
		return $KSFT_FAIL
	fi
	echo "makedumpfile -c -d 31 wrote $(wc -c < $W/dump) bytes"
	rm -f $W/dump
}

# --- moving on: kexec reboots and crashes -------------------------------------

# This kernel's command line for the next kernel of the scenario: the same,
# with the vmtest state that changes (mode, phase, tests done so far, the
# size the device is asked for, its region)
next_cmdline() { # MODE PHASE NEXT_TEST [EXTRA]
	keep=$(sed -e 's/ vmtest\.mode=[^ ]*//' -e 's/ vmtest\.phase=[^ ]*//' \
		-e 's/ vmtest\.next=[^ ]*//' -e 's/ vmtest\.requested=[^ ]*//' \
		-e 's/ vmtest\.device=[^ ]*//' -e 's/ vmtest\.plan=[^ ]*//' $CMDLINE)
	region=$(device_region | sed -n 's/^0*\([0-9a-f]*\) 0*\([0-9a-f]*\) .*/\1-\2/p')
	echo "$keep vmtest.mode=$1 vmtest.phase=$2 vmtest.next=$3 vmtest.requested=$REQUESTED vmtest.device=$region vmtest.plan=$PLAN${4:+ $4}"
}

capture_cmdline() { # PHASE NEXT_TEST
	next_cmdline capture "$1" "$2" "$CAPTURE_ARGS" | sed 's/ crashkernel=[^ ]*//'
}

fail_rest() { # REASON: the plan's remaining results, failed, then stop
	echo "# $1"
	while [ "$test_number" -lt "$PLAN" ]; do
		test_number=$((test_number + 1))
		echo "not ok $test_number chain_broken.result_$test_number # $1"
	done
	failed=1
}

reboot_into() { # load|file PHASE: kexec this kernel again; PHASE runs there
	cat $INITRD > $W/next.cpio
	(cd / && echo boot/initrd.cpio | cpio -o -H newc 2> /dev/null) >> $W/next.cpio
	syscall=--kexec-syscall
	[ "$1" = file ] && syscall=--kexec-file-syscall
	if ! $KEXEC $syscall -l $KERNEL --initrd=$W/next.cpio \
		--command-line="$(next_cmdline reboot "$2" "$test_number")" > $W/reboot.out 2>&1; then
		fail_rest "$2: kexec $syscall -l failed: $(tail -n 1 $W/reboot.out)"
		return
	fi
	echo "# vmtest-reboot: $2 (kexec $syscall -l, kexec -e)"
	$KEXEC -e > $W/reboot.out 2>&1
	fail_rest "$2: kexec -e returned: $(tail -n 1 $W/reboot.out)"
}

crash() { # PHASE
	echo "# vmtest-request: crash=$1"
	sleep 1
	echo c > /proc/sysrq-trigger
	fail_rest "$1: the crash did not happen"
}

resize() { # MIB: ask the host for a new size and remember it
	REQUESTED=$(($1 * 1024 * 1024))
	echo "# vmtest-request: requested-size=$REQUESTED"
}

load_file_capture() { # PHASE NEXT_TEST: kexec -s -p with the capture kernel
	if ! grep -q "Crash kernel" /proc/iomem; then
		echo "no crashkernel= reservation in /proc/iomem"
		return $KSFT_FAIL
	fi
	$KEXEC --kexec-file-syscall -p $KERNEL --initrd=$INITRD \
		--command-line="$(capture_cmdline "$1" "$2")" > $W/kdump.out 2>&1
	code=$?
	tail -n 5 $W/kdump.out
	[ $code = 0 ] || { echo "kexec -s -p failed (exit $code)"; return $KSFT_FAIL; }
	echo "loaded with kexec_file_load; /sys/kernel/kexec_crash_loaded: $(cat /sys/kernel/kexec_crash_loaded)"
}

kdump_load() { # after kexec_file_reboot: resize to a partly plugged block, kexec -p, crash
	resize "$KDUMP_MIB"
	run_test kdump_load.iomem_virtio_mem check_iomem_virtio_mem "$REQUESTED"
	run_test kdump_load.kdump_dumps_virtio_mem check_kdump \
		"$(capture_cmdline kdump_load $((test_number + 1)))"
	crash kdump_load
}

# --- the scenarios --------------------------------------------------------------

scenario_test() {
	phases=$(param phases | tr ',' ' ')
	phases=${phases:-boot:256}
	count=0
	for phase in $phases; do
		count=$((count + 1))
	done
	plan $((count * PHASE_CHECKS + 2 + 2 * REBOOT_CHECKS + KDUMP_CHECKS + CAPTURE_CHECKS))
	for phase in $phases; do
		REQUESTED=$((${phase#*:} * 1024 * 1024))
		run_phase "${phase%%:*}" "${phase#*:}"
		last=${phase%%:*}
	done
	run_test "$last.dmesg_clean" check_dmesg
	reboot_into load kexec_load_reboot
}

after_reboot() {
	phase=$(param phase)
	run_test "$phase.memmap_excludes_virtio_mem" check_boot_memmap
	run_test "$phase.iomem_no_plain_ram_in_device" check_no_plain_ram
	run_test "$phase.driver_replugged" check_replugged
	run_test "$phase.dmesg_clean" check_dmesg
	case $phase in
	kexec_load_reboot) reboot_into file kexec_file_reboot ;;
	kexec_file_reboot) kdump_load ;;
	esac
}

in_capture_kernel() {
	phase=$(param phase)
	run_test "$phase.vmcore_covers_virtio_mem" check_vmcore_headers
	run_test "$phase.vmcore_reads_plugged" check_vmcore_reads "$phase"
	run_test "$phase.makedumpfile_ok" check_makedumpfile
	run_test "$phase.dmesg_clean" check_dmesg
}

scenario_kdump_file() {
	plan $((KDUMP_CHECKS + CAPTURE_CHECKS))
	run_test kdump_file.iomem_virtio_mem check_iomem_virtio_mem "$REQUESTED"
	run_test kdump_file.capture_loaded load_file_capture kdump_file $((test_number + 1))
	crash kdump_file
}

scenario_crash_hotplug() {
	plan $((KDUMP_CHECKS + CAPTURE_CHECKS))
	run_test crash_hotplug.capture_loaded load_file_capture crash_hotplug $((test_number + 2))
	for mib in $(param hotplug_sizes | tr ',' ' '); do
		resize "$mib"
		check_iomem_virtio_mem "$REQUESTED" > /dev/null
	done
	run_test crash_hotplug.iomem_virtio_mem check_iomem_virtio_mem "$REQUESTED"
	crash crash_hotplug
}

# The tree's tools/testing/selftests/kexec/ test, as kselftest runs it (from its
# directory); it finds the kernel at /boot/vmlinuz-RELEASE and the config in
# /lib/modules/RELEASE/config. Without IMA or secure boot a load must work.
check_kexec_selftest() { # SCRIPT
	if [ ! -f "$KEXEC_SELFTESTS/$1" ]; then
		echo "$KEXEC_SELFTESTS/$1 is not in the initramfs"
		return $KSFT_SKIP
	fi
	release=$(uname -r)
	ln -sf /boot/vmlinuz "/boot/vmlinuz-$release"
	mkdir -p "/lib/modules/$release"
	cp /boot/config "/lib/modules/$release/config"
	(cd $KEXEC_SELFTESTS && sh "./$1")
}

scenario_control() {
	plan $CONTROL_CHECKS
	run_test control.kselftest_kexec_load check_kexec_selftest test_kexec_load.sh
	run_test control.kselftest_kexec_file_load check_kexec_selftest test_kexec_file_load.sh
	run_test control.probe_memmap_entry check_probe_memmap
	run_test control.probe_kexec_load_memmap check_probe_kexec_load_memmap
	run_test control.dmesg_clean check_dmesg
}

plan() { # N: the first kernel of a scenario prints the header
	PLAN=$1
	echo "TAP version 13"
	echo "1..$PLAN"
}

main() {
	# kexec -u, /dev/kmsg and memory/probe touch the running kernel: guests only
	mode=$(param mode)
	if [ -z "$mode" ] || [ "$mode" = probe ]; then
		echo "vmtest.sh: not in a kseries vmtest guest (no vmtest.mode=)" >&2
		exit $KSFT_SKIP
	fi
	exec 3>&1	# the results port, for requests from inside a check
	mkdir -p $W
	PLUG_TIMEOUT=$(param plug_timeout)
	PLUG_TIMEOUT=${PLUG_TIMEOUT:-120}
	KDUMP_MIB=$(param kdump_size)
	KDUMP_MIB=${KDUMP_MIB:-200}
	PLAN=$(param plan)
	test_number=$(param next)
	test_number=${test_number:-0}
	REQUESTED=$(param requested)
	REQUESTED=${REQUESTED:-$(($(param boot_size) * 1024 * 1024))}
	echo "# vmtest-kernel: $(uname -r) $(uname -m) mode=$mode phase=$(param phase)"
	case $mode in
	test) scenario_test ;;
	reboot) after_reboot ;;
	capture) in_capture_kernel ;;
	kdump_file) scenario_kdump_file ;;
	crash_hotplug) scenario_crash_hotplug ;;
	control) scenario_control ;;
	*) echo "vmtest.sh: unknown vmtest.mode=$mode" >&2; exit $KSFT_FAIL ;;
	esac
	return $failed
}

# VMTEST_LIBRARY_ONLY=1: only define the functions (the host tests source them)
[ -n "${VMTEST_LIBRARY_ONLY:-}" ] || main
