// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests for hot-adding driver-managed memory (MHP_DRIVER_MANAGED).
 *
 * Every case hot-adds one memory block in a part of the physical address
 * space that no resource claims, checks what the rest of the kernel and user
 * space get to see, and removes the memory again:
 *
 * - the iomem resource (/proc/iomem): its name and IORESOURCE_* flags;
 * - the firmware memory map (/sys/firmware/memmap), from which kexec-tools
 *   builds the memory map of a kexec_load() kernel;
 * - the memory block devices (/sys/devices/system/memory);
 * - memblock, on architectures that keep it after boot;
 * - where kexec_file_load() places segments.
 *
 * The memory is never onlined, so it is never accessed and nothing has to
 * back the range. A case that cannot run (no free range in the hot-pluggable
 * part of the address space, or a configuration without the feature it
 * checks) is skipped with the reason.
 */

#include <kunit/test.h>
#include <linux/device.h>
#include <linux/ioport.h>
#include <linux/kernfs.h>
#include <linux/kexec.h>
#include <linux/kobject.h>
#include <linux/limits.h>
#include <linux/memblock.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/string.h>

#define MHP_TEST_RAM_NAME	"System RAM"
#define MHP_TEST_DM_NAME	"System RAM (driver managed)"
#define MHP_TEST_DRIVER_NAME	"System RAM (kunit)"

/* The memory block a case hot-adds. */
struct mhp_test_range {
	u64 start;
	u64 size;
	int nid;
	bool added;
};

static u64 mhp_test_last(const struct mhp_test_range *r)
{
	return r->start + r->size - 1;
}

/* --- Finding a free range ------------------------------------------------ */

static int mhp_test_end_cb(struct resource *res, void *arg)
{
	u64 *end = arg;

	*end = max_t(u64, *end, res->end);
	return 0;
}

struct mhp_test_search {
	u64 candidate;
	u64 size;
	bool exhausted;
};

/*
 * Called for the top-level iomem resources in address order: move the
 * candidate past every resource it overlaps and stop at the first gap that
 * is large enough.
 */
static int mhp_test_search_cb(struct resource *res, void *arg)
{
	struct mhp_test_search *search = arg;
	u64 next;

	if (res->end < search->candidate)
		return 0;
	if (res->start > search->candidate &&
	    res->start - search->candidate >= search->size)
		return 1;
	if (check_add_overflow((u64)res->end, search->size, &next)) {
		search->exhausted = true;
		return 1;
	}
	search->candidate = ALIGN_DOWN(next, search->size);
	return 0;
}

static bool mhp_test_fits(u64 start, u64 size, u64 last)
{
	return start <= last && last - start >= size - 1;
}

/*
 * Find a memory-block-aligned block that the kernel can hot-add and map and
 * that intersects no iomem resource: preferably above every resource (e.g.,
 * on x86, not in the gap below 4 GiB that is left to PCI devices), else the
 * lowest free block above System RAM. On failure, describe why in @why.
 */
static bool mhp_test_find_range(struct mhp_test_range *r, char *why, size_t len)
{
	struct range pluggable = mhp_get_pluggable_range(true);
	struct mhp_test_search search = { .size = memory_block_size_bytes() };
	u64 ram_end = 0, res_end = 0, first, last;

	if (pluggable.start > pluggable.end) {
		snprintf(why, len, "no physical range can be hot-added on this system");
		return false;
	}
	last = min_t(u64, pluggable.end, iomem_resource.end);

	walk_iomem_res_desc(IORES_DESC_NONE, 0, 0, iomem_resource.end, &res_end,
			    mhp_test_end_cb);
	if (!check_add_overflow(res_end, search.size, &first)) {
		first = max_t(u64, ALIGN_DOWN(first, search.size),
			      ALIGN(pluggable.start, search.size));
		if (mhp_test_fits(first, search.size, last)) {
			search.candidate = first;
			goto found;
		}
	}

	walk_system_ram_res(0, U64_MAX, &ram_end, mhp_test_end_cb);
	first = max_t(u64, ram_end + 1, pluggable.start);
	search.candidate = ALIGN(first, search.size);
	walk_iomem_res_desc(IORES_DESC_NONE, 0, 0, iomem_resource.end, &search,
			    mhp_test_search_cb);
	if (search.exhausted || !mhp_test_fits(search.candidate, search.size, last)) {
		snprintf(why, len,
			 "no free %llu MiB block above System RAM (which ends at %#llx) in the hot-pluggable range [%#llx-%#llx]",
			 search.size >> 20, ram_end, pluggable.start, pluggable.end);
		return false;
	}

found:
	r->start = search.candidate;
	r->size = search.size;
	r->nid = memory_add_physaddr_to_nid(r->start);
	if (r->nid < 0 || !node_possible(r->nid))
		r->nid = first_online_node;
	return true;
}

/* --- What the rest of the system sees ------------------------------------- */

static int mhp_test_count_cb(struct resource *res, void *arg)
{
	unsigned int *count = arg;

	(*count)++;
	return 0;
}

/* Number of top-level iomem resources that intersect the range. */
static unsigned int mhp_test_resources(const struct mhp_test_range *r)
{
	unsigned int count = 0;

	walk_iomem_res_desc(IORES_DESC_NONE, 0, r->start, mhp_test_last(r),
			    &count, mhp_test_count_cb);
	return count;
}

struct mhp_test_blocks {
	unsigned int count;
	unsigned int offline;
};

static int mhp_test_block_cb(struct memory_block *mem, void *arg)
{
	struct mhp_test_blocks *blocks = arg;

	blocks->count++;
	if (mem->state == MEM_OFFLINE)
		blocks->offline++;
	return 0;
}

static void mhp_test_memory_blocks(const struct mhp_test_range *r,
				   struct mhp_test_blocks *blocks)
{
	memset(blocks, 0, sizeof(*blocks));
	lock_device_hotplug();
	walk_memory_blocks(r->start, r->size, blocks, mhp_test_block_cb);
	unlock_device_hotplug();
}

struct mhp_test_memmap {
	unsigned int overlapping;
	unsigned int exact_ram;
	unsigned int unreadable;
};

#ifdef CONFIG_FIRMWARE_MEMMAP
/* Show one attribute of a /sys/firmware/memmap entry into @buf (PAGE_SIZE). */
static bool mhp_test_memmap_attr(struct kobject *kobj, const char *name, char *buf)
{
	const struct kobj_type *ktype = get_ktype(kobj);
	const struct attribute_group **group;
	struct attribute **attr;

	if (!ktype || !ktype->sysfs_ops || !ktype->sysfs_ops->show)
		return false;
	for (group = ktype->default_groups; group && *group; group++) {
		for (attr = (*group)->attrs; attr && *attr; attr++) {
			if (strcmp((*attr)->name, name))
				continue;
			return ktype->sysfs_ops->show(kobj, *attr, buf) > 0;
		}
	}
	return false;
}

static bool mhp_test_memmap_u64(struct kobject *kobj, const char *name,
				char *buf, u64 *value)
{
	return mhp_test_memmap_attr(kobj, name, buf) &&
	       !kstrtoull(strim(buf), 0, value);
}

/*
 * Look at the /sys/firmware/memmap entries the way user space does: walk the
 * kobjects of the "memmap" kset below /sys/firmware and read their start, end
 * and type attributes through sysfs' show methods. The kset is created with
 * the first entry, so without it there are no entries.
 */
static void mhp_test_read_memmap(struct kunit *test, const struct mhp_test_range *r,
				 struct mhp_test_memmap *seen)
{
	struct kernfs_node *kn;
	struct kobject *kobj;
	struct kset *kset;
	u64 start, end;
	char *buf;

	memset(seen, 0, sizeof(*seen));
	buf = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, buf);
	if (!firmware_kobj)
		return;
	kn = kernfs_find_and_get(firmware_kobj->sd, "memmap");
	if (!kn)
		return;
	if (kernfs_type(kn) != KERNFS_DIR) {
		kernfs_put(kn);
		KUNIT_FAIL_AND_ABORT(test, "/sys/firmware/memmap is not a directory");
	}
	kset = to_kset(kn->priv);

	spin_lock(&kset->list_lock);
	list_for_each_entry(kobj, &kset->list, entry) {
		if (!mhp_test_memmap_u64(kobj, "start", buf, &start) ||
		    !mhp_test_memmap_u64(kobj, "end", buf, &end)) {
			seen->unreadable++;
			continue;
		}
		if (end < r->start || start > mhp_test_last(r))
			continue;
		seen->overlapping++;
		if (start == r->start && end == mhp_test_last(r) &&
		    mhp_test_memmap_attr(kobj, "type", buf) &&
		    !strcmp(strim(buf), MHP_TEST_RAM_NAME))
			seen->exact_ram++;
	}
	spin_unlock(&kset->list_lock);
	kernfs_put(kn);
}
#else
static void mhp_test_read_memmap(struct kunit *test, const struct mhp_test_range *r,
				 struct mhp_test_memmap *seen)
{
	memset(seen, 0, sizeof(*seen));
}
#endif /* CONFIG_FIRMWARE_MEMMAP */

struct mhp_test_memblock {
	u64 covered;
	unsigned int regions;
	unsigned int driver_managed;
};

#ifdef CONFIG_ARCH_KEEP_MEMBLOCK
static void mhp_test_read_memblock(const struct mhp_test_range *r,
				   struct mhp_test_memblock *seen)
{
	u64 end = r->start + r->size;
	struct memblock_region *region;

	memset(seen, 0, sizeof(*seen));
	/* Memory hotplug changes memblock with the device hotplug lock held. */
	lock_device_hotplug();
	for_each_mem_region(region) {
		u64 base = region->base, limit = region->base + region->size;

		if (limit <= r->start || base >= end)
			continue;
		seen->regions++;
		seen->covered += min(limit, end) - max(base, r->start);
		if (memblock_is_driver_managed(region))
			seen->driver_managed++;
	}
	unlock_device_hotplug();
}
#else
static void mhp_test_read_memblock(const struct mhp_test_range *r,
				   struct mhp_test_memblock *seen)
{
	memset(seen, 0, sizeof(*seen));
}
#endif /* CONFIG_ARCH_KEEP_MEMBLOCK */

#ifdef CONFIG_KEXEC_FILE
/*
 * Ask kexec_file's hole search for one page, restricted to the range. Return
 * its result and, on success, the address it picked in @where.
 */
static int mhp_test_kexec_hole(struct kunit *test, const struct mhp_test_range *r,
			       unsigned long *where)
{
	struct kimage *image = kunit_kzalloc(test, sizeof(*image), GFP_KERNEL);
	struct kexec_buf kbuf = {
		.image = image,
		.mem = KEXEC_BUF_MEM_UNKNOWN,
		.memsz = PAGE_SIZE,
		.buf_align = PAGE_SIZE,
		.buf_min = r->start,
		.buf_max = mhp_test_last(r),
		.top_down = true,
	};
	int ret;

	KUNIT_ASSERT_NOT_NULL(test, image);
	ret = kexec_locate_mem_hole(&kbuf);
	*where = kbuf.mem;
	return ret;
}
#else
static int mhp_test_kexec_hole(struct kunit *test, const struct mhp_test_range *r,
			       unsigned long *where)
{
	return -EOPNOTSUPP;
}
#endif /* CONFIG_KEXEC_FILE */

/* --- Adding and removing ------------------------------------------------- */

static void mhp_test_cleanup(void *data)
{
	struct mhp_test_range *r = data;

	if (r->added && remove_memory(r->start, r->size))
		pr_err("memory_hotplug_kunit: could not remove [%#llx-%#llx]\n",
		       r->start, mhp_test_last(r));
	r->added = false;
}

/* Pick a free block for this case, or skip the case saying why there is none. */
static struct mhp_test_range *mhp_test_prepare(struct kunit *test)
{
	struct mhp_test_range *r;
	char why[160];

	if (mhp_get_default_online_type() != MMOP_OFFLINE)
		kunit_skip(test,
			   "hot-added memory would be onlined (auto_online_blocks is not offline), but nothing backs the test range");

	r = kunit_kzalloc(test, sizeof(*r), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, r);
	if (!mhp_test_find_range(r, why, sizeof(why)))
		kunit_skip(test, "%s", why);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, mhp_test_cleanup, r), 0);
	kunit_info(test, "test range [%#llx-%#llx], node %d\n", r->start,
		   mhp_test_last(r), r->nid);
	return r;
}

static void mhp_test_add(struct kunit *test, struct mhp_test_range *r, mhp_t flags)
{
	int ret = add_memory(r->nid, r->start, r->size, flags);

	r->added = !ret;
	KUNIT_ASSERT_EQ_MSG(test, ret, 0, "add_memory() of [%#llx-%#llx] failed",
			    r->start, mhp_test_last(r));
}

static int mhp_test_add_named(struct mhp_test_range *r, const char *name,
			      mhp_t flags)
{
	int ret = add_memory_driver_managed(r->nid, r->start, r->size, name, flags);

	r->added = !ret;
	return ret;
}

static void mhp_test_remove(struct kunit *test, struct mhp_test_range *r)
{
	int ret = remove_memory(r->start, r->size);

	r->added = !!ret;
	KUNIT_ASSERT_EQ_MSG(test, ret, 0, "remove_memory() of [%#llx-%#llx] failed",
			    r->start, mhp_test_last(r));
}

/* --- Expectations ---------------------------------------------------------- */

/*
 * One busy System RAM resource covers exactly the range, named @name, flagged
 * driver-managed or not, and every memory block of the range exists, offline.
 */
static void mhp_test_expect_added(struct kunit *test, const struct mhp_test_range *r,
				  const char *name, bool driver_managed)
{
	struct mhp_test_blocks blocks;
	struct resource *res;

	/* The test owns this range: nothing else adds or removes it meanwhile. */
	res = lookup_resource(&iomem_resource, r->start);
	KUNIT_ASSERT_NOT_NULL_MSG(test, res, "no iomem resource starts at %#llx", r->start);
	KUNIT_EXPECT_EQ(test, (u64)res->end, mhp_test_last(r));
	KUNIT_EXPECT_EQ(test, mhp_test_resources(r), 1U);
	KUNIT_EXPECT_STREQ(test, res->name, name);
	KUNIT_EXPECT_EQ(test, res->flags & IORESOURCE_SYSTEM_RAM, IORESOURCE_SYSTEM_RAM);
	KUNIT_EXPECT_TRUE(test, res->flags & IORESOURCE_BUSY);
	KUNIT_EXPECT_EQ_MSG(test, !!(res->flags & IORESOURCE_SYSRAM_DRIVER_MANAGED),
			    driver_managed, "IORESOURCE_SYSRAM_DRIVER_MANAGED of \"%s\"",
			    res->name);
	KUNIT_EXPECT_EQ(test, region_intersects(r->start, r->size, IORESOURCE_SYSTEM_RAM,
						IORES_DESC_NONE), REGION_INTERSECTS);

	mhp_test_memory_blocks(r, &blocks);
	KUNIT_EXPECT_EQ(test, blocks.count, (unsigned int)(r->size / memory_block_size_bytes()));
	KUNIT_EXPECT_EQ(test, blocks.offline, blocks.count);
}

/* Nothing of the range is left: no resource, no memory block, no memmap entry. */
static void mhp_test_expect_gone(struct kunit *test, const struct mhp_test_range *r)
{
	struct mhp_test_blocks blocks;
	struct mhp_test_memmap memmap;

	KUNIT_EXPECT_EQ_MSG(test, mhp_test_resources(r), 0U,
			    "an iomem resource is left in [%#llx-%#llx]", r->start,
			    mhp_test_last(r));
	mhp_test_memory_blocks(r, &blocks);
	KUNIT_EXPECT_EQ(test, blocks.count, 0U);
	mhp_test_read_memmap(test, r, &memmap);
	KUNIT_EXPECT_EQ(test, memmap.overlapping, 0U);
}

static void mhp_test_need_memmap(struct kunit *test)
{
	if (!IS_ENABLED(CONFIG_FIRMWARE_MEMMAP))
		kunit_skip(test,
			   "CONFIG_FIRMWARE_MEMMAP is not set: there is no /sys/firmware/memmap");
}

/* --- Cases ----------------------------------------------------------------- */

/* add_memory() with MHP_DRIVER_MANAGED: flagged, named, removable. */
static void dm_flag_resource_and_removal(struct kunit *test)
{
	struct mhp_test_range *r = mhp_test_prepare(test);

	mhp_test_add(test, r, MHP_DRIVER_MANAGED);
	mhp_test_expect_added(test, r, MHP_TEST_DM_NAME, true);
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

/* add_memory() with MHP_DRIVER_MANAGED creates no firmware memmap entry. */
static void dm_flag_no_firmware_memmap(struct kunit *test)
{
	struct mhp_test_memmap memmap;
	struct mhp_test_range *r;

	mhp_test_need_memmap(test);
	r = mhp_test_prepare(test);
	mhp_test_add(test, r, MHP_DRIVER_MANAGED);
	mhp_test_read_memmap(test, r, &memmap);
	KUNIT_EXPECT_EQ(test, memmap.unreadable, 0U);
	KUNIT_EXPECT_EQ_MSG(test, memmap.overlapping, 0U,
			    "a /sys/firmware/memmap entry covers driver-managed memory");
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

/* add_memory() without the flag: ordinary System RAM, as before. */
static void no_flag_resource_and_removal(struct kunit *test)
{
	struct mhp_test_range *r = mhp_test_prepare(test);

	mhp_test_add(test, r, MHP_NONE);
	mhp_test_expect_added(test, r, MHP_TEST_RAM_NAME, false);
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

/* add_memory() without the flag creates a memmap entry; removal drops it. */
static void no_flag_firmware_memmap(struct kunit *test)
{
	struct mhp_test_memmap memmap;
	struct mhp_test_range *r;

	mhp_test_need_memmap(test);
	r = mhp_test_prepare(test);
	mhp_test_add(test, r, MHP_NONE);
	mhp_test_read_memmap(test, r, &memmap);
	KUNIT_EXPECT_EQ(test, memmap.unreadable, 0U);
	KUNIT_EXPECT_EQ_MSG(test, memmap.exact_ram, 1U,
			    "no \"System RAM\" entry for [%#llx-%#llx] in /sys/firmware/memmap",
			    r->start, mhp_test_last(r));
	KUNIT_EXPECT_EQ(test, memmap.overlapping, 1U);
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

/* add_memory_driver_managed() keeps the driver's name and flags the memory. */
static void dm_named_resource(struct kunit *test)
{
	struct mhp_test_memmap memmap;
	struct mhp_test_range *r = mhp_test_prepare(test);
	int ret;

	ret = mhp_test_add_named(r, MHP_TEST_DRIVER_NAME, MHP_DRIVER_MANAGED);
	KUNIT_ASSERT_EQ(test, ret, 0);
	mhp_test_expect_added(test, r, MHP_TEST_DRIVER_NAME, true);
	mhp_test_read_memmap(test, r, &memmap);
	KUNIT_EXPECT_EQ(test, memmap.overlapping, 0U);
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

/* add_memory_driver_managed() refuses names that are not "System RAM ($DRIVER)". */
static void dm_bad_name_rejected(struct kunit *test)
{
	static const char * const bad_names[] = {
		MHP_TEST_RAM_NAME, "kunit", "System RAM (kunit", "System RAM kunit)",
	};
	struct mhp_test_range *r = mhp_test_prepare(test);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad_names); i++) {
		KUNIT_EXPECT_EQ_MSG(test, mhp_test_add_named(r, bad_names[i], MHP_DRIVER_MANAGED),
				    -EINVAL, "name \"%s\"", bad_names[i]);
		if (r->added)
			mhp_test_remove(test, r);
		mhp_test_expect_gone(test, r);
	}
}

/* With memblock kept after boot, driver-managed memory is flagged there too. */
static void dm_memblock_flag(struct kunit *test)
{
	struct mhp_test_memblock seen;
	struct mhp_test_range *r;

	if (!IS_ENABLED(CONFIG_ARCH_KEEP_MEMBLOCK))
		kunit_skip(test,
			   "CONFIG_ARCH_KEEP_MEMBLOCK is not set: memblock is discarded after boot");
	r = mhp_test_prepare(test);

	mhp_test_add(test, r, MHP_DRIVER_MANAGED);
	mhp_test_read_memblock(r, &seen);
	KUNIT_EXPECT_EQ(test, seen.covered, r->size);
	KUNIT_EXPECT_GT(test, seen.regions, 0U);
	KUNIT_EXPECT_EQ_MSG(test, seen.driver_managed, seen.regions,
			    "memblock regions of driver-managed memory lack MEMBLOCK_DRIVER_MANAGED");
	mhp_test_remove(test, r);
	mhp_test_read_memblock(r, &seen);
	KUNIT_EXPECT_EQ(test, seen.regions, 0U);

	/* Without the flag, the same range is ordinary memblock memory. */
	mhp_test_add(test, r, MHP_NONE);
	mhp_test_read_memblock(r, &seen);
	KUNIT_EXPECT_EQ(test, seen.covered, r->size);
	KUNIT_EXPECT_EQ(test, seen.driver_managed, 0U);
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

/*
 * kexec_file never places a segment on driver-managed memory. The search is
 * restricted to the test range; without the flag, it does find room there,
 * which shows that the search reaches the range at all.
 */
static void dm_kexec_file_hole_search(struct kunit *test)
{
	struct mhp_test_range *r;
	unsigned long where;
	int ret;

	if (!IS_ENABLED(CONFIG_KEXEC_FILE))
		kunit_skip(test,
			   "CONFIG_KEXEC_FILE is not set: no kexec_file_load() segment placement");
	r = mhp_test_prepare(test);

	mhp_test_add(test, r, MHP_DRIVER_MANAGED);
	where = 0;
	ret = mhp_test_kexec_hole(test, r, &where);
	KUNIT_EXPECT_EQ_MSG(test, ret, -EADDRNOTAVAIL,
			    "kexec_file picked %#lx in driver-managed memory", where);
	mhp_test_remove(test, r);

	mhp_test_add(test, r, MHP_NONE);
	ret = mhp_test_kexec_hole(test, r, &where);
	KUNIT_EXPECT_EQ(test, ret, 0);
	KUNIT_EXPECT_GE(test, (u64)where, r->start);
	KUNIT_EXPECT_LE(test, (u64)where + PAGE_SIZE - 1, mhp_test_last(r));
	mhp_test_remove(test, r);
	mhp_test_expect_gone(test, r);
}

static struct kunit_case mhp_driver_managed_cases[] = {
	KUNIT_CASE(dm_flag_resource_and_removal),
	KUNIT_CASE(dm_flag_no_firmware_memmap),
	KUNIT_CASE(no_flag_resource_and_removal),
	KUNIT_CASE(no_flag_firmware_memmap),
	KUNIT_CASE(dm_named_resource),
	KUNIT_CASE(dm_bad_name_rejected),
	KUNIT_CASE(dm_memblock_flag),
	KUNIT_CASE(dm_kexec_file_hole_search),
	{}
};

static struct kunit_suite mhp_driver_managed_suite = {
	.name = "memory_hotplug_driver_managed",
	.test_cases = mhp_driver_managed_cases,
};

kunit_test_suite(mhp_driver_managed_suite);

MODULE_DESCRIPTION("KUnit tests for hot-adding driver-managed memory");
MODULE_LICENSE("GPL");
