// What a transaction was decided to do, as coordinator and agents both name it.
#pragma once

namespace txn::protocol {

enum class Decision { kNone, kCommit, kAbort };

}  // namespace txn::protocol
