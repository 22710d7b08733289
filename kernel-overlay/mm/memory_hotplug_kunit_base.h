/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Laid onto the base tree only, never posted: without the series there is
 * no MHP_DRIVER_MANAGED, so the suite would not even build. Give it the bit
 * the series gives it; the base ignores that bit, so every case runs and
 * shows what the base does with memory a driver asks to be driver-managed.
 */
#include <linux/memory_hotplug.h>

#ifndef MHP_DRIVER_MANAGED
#define MHP_DRIVER_MANAGED	((__force mhp_t)BIT(4))
#endif
