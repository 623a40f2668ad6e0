// Transaction ids and the native transaction names derived from them.
//
// A txn id is `NODE-INCARNATION-EPOCH-SEQ`: NODE is the coordinator's node id ([a-z0-9]{1,16}),
// INCARNATION the id its decision log got when it was created (8 lowercase hex digits), EPOCH a
// counter the coordinator bumps (durably) at every start, SEQ a counter within the epoch. So ids
// are unique across restarts without a disk write per transaction, and a coordinator whose data
// folder was replaced can tell an id of its node's earlier life (whose decision it cannot know)
// from one of its own (never decided COMMIT means aborted). Ids from before incarnations existed,
// `NODE-EPOCH-SEQ`, still parse, with an empty incarnation.
// A branch's native name (PostgreSQL gid, XA gtrid) is `txc_<txn id>_<branch index>`: at most
// 4 + 16+1+8+1+10+1+12 + 1 + 4 = 58 bytes, inside PostgreSQL's 200 and XA's 64.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace txn::common {

inline constexpr absl::string_view kGidPrefix = "txc_";
inline constexpr uint32_t kMaxBranches = 1000;

inline constexpr size_t kIncarnationLength = 8;

bool IsValidNodeId(absl::string_view node);
bool IsValidIncarnation(absl::string_view incarnation);
// Requires IsValidNodeId(node) and IsValidIncarnation(incarnation).
std::string MakeTxnId(absl::string_view node, absl::string_view incarnation, uint64_t epoch,
                      uint64_t seq);
bool IsValidTxnId(absl::string_view txn_id);

struct TxnIdParts {
  std::string node;
  std::string incarnation;  // empty for an id made before incarnations existed
  uint64_t epoch = 0;
  uint64_t seq = 0;
};
// nullopt unless IsValidTxnId(txn_id).
std::optional<TxnIdParts> ParseTxnId(absl::string_view txn_id);

struct BranchName {
  std::string txn_id;
  uint32_t branch = 0;
};

// Requires IsValidTxnId(txn_id) and branch < kMaxBranches.
std::string BranchGid(absl::string_view txn_id, uint32_t branch);
// Parses a gid made by BranchGid; nullopt for anything else (other applications' gids).
std::optional<BranchName> ParseBranchGid(absl::string_view gid);
// The coordinator node a gid made by BranchGid belongs to; "" for any other gid.
std::string NodeOfGid(absl::string_view gid);

}  // namespace txn::common
