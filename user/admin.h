/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ML_ADMIN_H
#define ML_ADMIN_H

/* `mailless status` and `mailless unload` of the responder and the XDP
 * guard, from the pins under dir alone (user/admin.c). Exit statuses. */
int ml_admin_status(const char *dir, int json);
int ml_admin_unload(const char *dir);

#endif
