/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "pg-util.h"
#include "pg-wire.h"

/* Append-only. The index is the PG_ERR_* code; the name is the wire's. */
static const struct {
        const char *name;
        int errnum;
        const char *description;
} error_table[PG_ERR_MAX + 1] = {
        [PG_ERR_BAD_REQUEST] = { "bad-request", EINVAL, "the request is malformed" },
        [PG_ERR_UNSUPPORTED_VERSION] = { "unsupported-version", EPROTONOSUPPORT,
                                         "the protocol version is not supported" },
        [PG_ERR_NOT_AUTHORIZED] = { "not-authorized", EACCES,
                                    "the client is not authorised for this operation" },
        [PG_ERR_NO_IOMMU] = { "no-iommu", EOPNOTSUPP, "the host has no working IOMMU" },
        [PG_ERR_NO_INTERRUPT_REMAPPING] = { "no-interrupt-remapping", EOPNOTSUPP,
                                            "the host does not confirm interrupt remapping" },
        [PG_ERR_NO_SUCH_DOMAIN] = { "no-such-domain", ESRCH, "no such domain" },
        [PG_ERR_DOMAIN_DYING] = { "domain-dying", ESRCH, "the domain is dying" },
        [PG_ERR_NO_SUCH_DEVICE] = { "no-such-device", ENODEV, "no such PCI device" },
        [PG_ERR_PROTECTED_DEVICE] = { "protected-device", EPERM,
                                      "the device is protected by policy" },
        [PG_ERR_NOT_ASSIGNABLE] = { "not-assignable", ENXIO,
                                    "the device is not bound to pciback and quarantined" },
        [PG_ERR_GROUP_CONFLICT] = { "group-conflict", EBUSY,
                                    "another device of its group belongs to another domain" },
        [PG_ERR_BUSY] = { "busy", EBUSY, "the device is already assigned" },
        [PG_ERR_DOMAIN_NO_IOMMU] = { "domain-no-iommu", EOPNOTSUPP,
                                     "the domain was created without an IOMMU context" },
        [PG_ERR_DENIED] = { "denied", EPERM, "the policy denies it" },
        [PG_ERR_LIMIT_REACHED] = { "limit-reached", EDQUOT,
                                   "the domain has reached its device limit" },
        [PG_ERR_RESET_FAILED] = { "reset-failed", EIO, "the device could not be reset" },
        [PG_ERR_NOT_ASSIGNED] = { "not-assigned", ENOENT, "no such grant" },
        [PG_ERR_HYPERVISOR_ERROR] = { "hypervisor-error", EIO, "the hypervisor call failed" },
        [PG_ERR_STATE_ERROR] = { "state-error", EIO, "the grant store could not be written" },
        [PG_ERR_POLICY_INVALID] = { "policy-invalid", EINVAL, "the policy file is invalid" },
        [PG_ERR_INTERNAL] = { "internal", ENOTRECOVERABLE, "internal error" },
        [PG_ERR_IDENTITY_CHANGED] = { "identity-changed", ESTALE,
                                      "the device at that address is not the one recorded there" },
};

const char *pg_error_name(int code)
{
        if (code <= 0 || code > PG_ERR_MAX)
                return NULL;
        return error_table[code].name;
}

int pg_error_lookup(const char *name)
{
        if (!name)
                return -EINVAL;
        for (int i = 1; i <= PG_ERR_MAX; i++)
                if (streq(error_table[i].name, name))
                        return i;
        return -EINVAL;
}

int pg_error_errno(int code)
{
        if (code <= 0 || code > PG_ERR_MAX)
                return EINVAL;
        return error_table[code].errnum;
}

const char *pg_error_description(int code)
{
        if (code <= 0 || code > PG_ERR_MAX)
                return "unknown error";
        return error_table[code].description;
}

#define E(x) { x, #x }
static const struct {
        int errnum;
        const char *name;
} errno_table[] = {
        E(EPERM),     E(ENOENT),     E(ESRCH),  E(EINTR),        E(EIO),
        E(ENXIO),     E(E2BIG),      E(EBADF),  E(EAGAIN),       E(ENOMEM),
        E(EACCES),    E(EFAULT),     E(EBUSY),  E(EEXIST),       E(EXDEV),
        E(ENODEV),    E(ENOTDIR),    E(EINVAL), E(ENFILE),       E(EMFILE),
        E(ENOSPC),    E(EROFS),      E(ERANGE), E(ENOSYS),       E(EOPNOTSUPP),
        E(ETIMEDOUT), E(EPROTO),     E(EDQUOT), E(ENOTRECOVERABLE), E(EBADMSG),
        E(EMSGSIZE),  E(ECONNREFUSED), E(EPROTONOSUPPORT), E(ENOTCONN), E(ESTALE),
};
#undef E

const char *pg_errno_name(int e)
{
        for (size_t i = 0; i < ELEMENTSOF(errno_table); i++)
                if (errno_table[i].errnum == e)
                        return errno_table[i].name;
        return NULL;
}

int pg_errno_lookup(const char *name)
{
        if (!name)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(errno_table); i++)
                if (streq(errno_table[i].name, name))
                        return errno_table[i].errnum;
        return -EINVAL;
}
