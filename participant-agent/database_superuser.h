// What an agent says when its database user can do more than a participant needs: a superuser
// (PostgreSQL), or SUPER / FILE (MySQL). The statement policy (common/statement_guard.h) refuses
// what such a user could do with a client's text, but a deny list is not a privilege boundary:
// the operator should know. Sets the gauge txagent_database_superuser (1 or 0) and logs a warning
// the first time it is 1. Thread-safe.
#pragma once

#include "absl/strings/string_view.h"

namespace txn::agent {

// `what`: the user and privilege, e.g. "user postgres is a superuser"; `advice`: what to do.
void NoteDatabaseSuperuser(bool superuser, absl::string_view what, absl::string_view advice);

}  // namespace txn::agent
