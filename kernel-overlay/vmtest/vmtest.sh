#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# kseries vmtest: the kexec contract for driver-managed (virtio-mem) memory,
# checked inside the guest with the real kexec-tools. Output is TAP 13 as
# kselftest prints it; every check ends in a kselftest code (0 pass, 1 fail,
# 4 skip; a skip says why).
#
# For each phase (vmtest.phases=boot:256,grow:512,shrink:128 on the kernel
# command line: phase name and the virtio-mem size in MiB) the guest checks:
#
#   iomem_virtio_mem            the plugged memory is "System RAM (virtio_mem)"
#                               in /proc/iomem, as much as requested
#   memmap_excludes_virtio_mem  no /sys/firmware/memmap entry overlaps it
#   kexec_load_segments         kexec -l (kexec_load) puts no segment on it
#   kexec_load_memmap           nor into the E820 map it hands over
#   kexec_file_segments         kexec_file_load puts no segment on it (placement
#                               from KEXEC_FILE_DEBUG lines in the kernel log)
#   kexec_file_memmap           nor into the E820 map it hands over
#   kdump_dumps_virtio_mem      kexec -p: the ELF core headers cover it
#
# and once, in the boot phase before any kexec load, mem_on_off_test: the
# tree's memory-hotplug selftest.
#
# Before a phase other than "boot" the guest asks the host to resize the
# device ("# vmtest-request: requested-size=BYTES") and waits for the driver to
# follow. Then two controls prove the checks can see what they look for: memory
# hot-added through the probe interface (not driver managed) must get a
# firmware memmap entry and must be in the kexec_load map. Last, the kernel log
# must hold no WARNING, BUG or Oops.
#
# Addresses go to the host as diagnostic lines:
#   # vmtest-range SET 0xSTART-0xEND [LABEL]
#   # vmtest-segment SET 0xSTART-0xEND [LABEL]

KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4

KERNEL=/boot/vmlinuz
KEXEC=/usr/sbin/kexec
KEXEC_FILE=/vmtest/kexec-file-debug
SELFTEST=/selftests/memory-hotplug/mem-on-off-test.sh
MEMORY=/sys/devices/system/memory
MEMMAP=/sys/firmware/memmap
W=/tmp/vmtest
NEXT_CMDLINE="console=ttyS0 vmtest.mode=probe"
VIRTIO_MEM_NAME="System RAM (virtio_mem)"

PHASE_CHECKS=7
FINAL_CHECKS=4	# boot.mem_on_off_test, the two controls, dmesg_clean

test_number=0
failed=0

param() {
	sed -n "s/.*vmtest\.$1=\([^ ]*\).*/\1/p" /proc/cmdline
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

check_iomem_virtio_mem() { # WANT_BYTES
	waited=0
	while :; do
		iomem_ranges "$VIRTIO_MEM_NAME" > $W/virtio_mem
		have=$(range_bytes $W/virtio_mem)
		[ "$have" = "$1" ] && break
		[ $waited -ge "$PLUG_TIMEOUT" ] && break
		sleep 1
		waited=$((waited + 1))
	done
	emit range virtio_mem $W/virtio_mem
	echo "\"$VIRTIO_MEM_NAME\": $((have >> 20)) MiB, requested $(($1 >> 20)) MiB (waited ${waited} s)"
	if [ "$have" != "$1" ]; then
		grep -i virtio /proc/iomem
		return $KSFT_FAIL
	fi
}

check_memmap() {
	if [ ! -d $MEMMAP ]; then
		echo "no $MEMMAP (CONFIG_FIRMWARE_MEMMAP)"
		return $KSFT_FAIL
	fi
	firmware_memmap > $W/memmap
	emit range memmap $W/memmap
	need_virtio_mem || return
	overlaps $W/memmap $W/virtio_mem > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
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
	overlaps $W/segments $W/virtio_mem > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
}

check_kexec_load_memmap() {
	if [ ! -s $W/kexec_load.out ]; then
		echo "kexec -l did not run"
		return $KSFT_FAIL
	fi
	e820_table $W/kexec_load.out "" > $W/e820
	emit range kexec_load_memmap $W/e820
	if [ ! -s $W/e820 ]; then
		echo "kexec --debug printed no E820 memmap"
		return $KSFT_FAIL
	fi
	need_virtio_mem || return
	overlaps $W/e820 $W/virtio_mem > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
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
	overlaps $W/segments $W/virtio_mem > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
}

check_kexec_file_memmap() {
	e820_table $W/kexec_file.out ".*kexec-bzImage64: " > $W/e820
	emit range kexec_file_memmap $W/e820
	if [ ! -s $W/e820 ]; then
		echo "the kernel logged no kexec_file E820 memmap (x86 only)"
		return $KSFT_SKIP
	fi
	need_virtio_mem || return
	overlaps $W/e820 $W/virtio_mem > $W/bad
	cat $W/bad
	[ ! -s $W/bad ]
}

check_kdump() {
	if ! grep -q "Crash kernel" /proc/iomem; then
		echo "no crashkernel= reservation in /proc/iomem"
		return $KSFT_SKIP
	fi
	$KEXEC --kexec-syscall -p $KERNEL --command-line="$NEXT_CMDLINE" --debug \
		> $W/kdump.out 2>&1
	code=$?
	$KEXEC --kexec-syscall -p -u > /dev/null 2>&1
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
	need_virtio_mem || return
	: > $W/bad
	while read -r s e label; do
		hole=$(uncovered "$s" "$e" $W/dumped)
		if [ -n "$hole" ]; then
			echo "0x$s-0x$e ($label) is not dumped from $hole on" >> $W/bad
		fi
	done < $W/virtio_mem
	cat $W/bad
	[ ! -s $W/bad ]
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
	run_test "$1.kexec_file_memmap" check_kexec_file_memmap
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

main() {
	# kexec -u, /dev/kmsg and memory/probe touch the running kernel: guests only
	if ! grep -q "vmtest.mode=test" /proc/cmdline; then
		echo "vmtest.sh: not in a kseries vmtest guest (no vmtest.mode=test)" >&2
		exit $KSFT_SKIP
	fi
	mkdir -p $W
	PLUG_TIMEOUT=$(param plug_timeout)
	PLUG_TIMEOUT=${PLUG_TIMEOUT:-120}
	phases=$(param phases | tr ',' ' ')
	phases=${phases:-boot:256}
	count=0
	for phase in $phases; do
		count=$((count + 1))
	done
	echo "TAP version 13"
	echo "1..$((count * PHASE_CHECKS + FINAL_CHECKS))"
	echo "# vmtest-kernel: $(uname -r) $(uname -m)"
	for phase in $phases; do
		run_phase "${phase%%:*}" "${phase#*:}"
	done
	run_test control.probe_memmap_entry check_probe_memmap
	run_test control.probe_kexec_load_memmap check_probe_kexec_load_memmap
	run_test dmesg_clean check_dmesg
	return $failed
}

# VMTEST_LIBRARY_ONLY=1: only define the functions (the host tests source them)
[ -n "${VMTEST_LIBRARY_ONLY:-}" ] || main
