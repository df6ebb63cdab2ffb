/* SPDX-License-Identifier: MIT */
/*
 * A device's identity (grants.h): what sysfs says of it, and whether the
 * device at an address is still the one recorded there. A BDF is only an
 * address: after a hardware change another device can sit at it.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "grants.h"

void pgd_identity_from_pci(const struct hv_pci_info *pci, struct pgd_identity *ret)
{
        *ret = (struct pgd_identity){
                .known = true,
                .vendor = pci->vendor,
                .device = pci->device,
                .subsystem_vendor = pci->subsystem_vendor,
                .subsystem_device = pci->subsystem_device,
                .class = pci->class & 0xffffffU,
                .serial_unknown = pci->serial_unknown,
        };
        snprintf(ret->serial, sizeof(ret->serial), "%s", pci->serial_unknown ? "" : pci->serial);
        snprintf(ret->path, sizeof(ret->path), "%s", pci->path);
}

struct text {
        char *buf;
        size_t size, len;
};

_printf_(2, 3) static void add(struct text *t, const char *fmt, ...)
{
        va_list ap;

        if (t->size == 0 || t->len >= t->size)
                return;
        if (t->len > 0)
                t->len += (size_t)snprintf(t->buf + t->len, t->size - t->len, ", ");
        if (t->len >= t->size)
                return;
        va_start(ap, fmt);
        t->len += (size_t)vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
        va_end(ap);
}

static const char *serial_text(const struct pgd_identity *id)
{
        if (id->serial_unknown)
                return "unknown";
        return id->serial[0] ? id->serial : "none";
}

int pgd_identity_diff(const struct pgd_identity *was, const struct pgd_identity *now, char *buf,
                      size_t size)
{
        struct text t = {.buf = buf, .size = size};

        if (size > 0)
                buf[0] = '\0';
        if (!was || !was->known)
                return 0;
        if (was->vendor != now->vendor)
                add(&t, "vendor id 0x%04x became 0x%04x", was->vendor, now->vendor);
        if (was->device != now->device)
                add(&t, "device id 0x%04x became 0x%04x", was->device, now->device);
        if (was->subsystem_vendor != now->subsystem_vendor)
                add(&t, "subsystem vendor id 0x%04x became 0x%04x", was->subsystem_vendor,
                    now->subsystem_vendor);
        if (was->subsystem_device != now->subsystem_device)
                add(&t, "subsystem device id 0x%04x became 0x%04x", was->subsystem_device,
                    now->subsystem_device);
        if (was->class != now->class)
                add(&t, "class 0x%06x became 0x%06x", was->class, now->class);
        /*
         * A serial not read when it was recorded says nothing either way (the
         * reader lacked CAP_SYS_ADMIN then). Fail closed the other way: a
         * serial that can no longer be read is not the serial recorded.
         */
        if (!was->serial_unknown &&
            (now->serial_unknown || !streq(was->serial, now->serial)))
                add(&t, "serial %s became %s", serial_text(was), serial_text(now));
        /* Likewise a path: unknown when recorded compares with nothing. */
        if (was->path[0] && !streq(was->path, now->path))
                add(&t, "path %s became %s", was->path[0] ? was->path : "unknown",
                    now->path[0] ? now->path : "unknown");
        return t.len > 0 ? 1 : 0;
}
