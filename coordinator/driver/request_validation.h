// Checks of client requests before anything is started: every error is INVALID_ARGUMENT (or
// NOT_FOUND for an unknown participant, UNIMPLEMENTED for a protocol not built yet) with one
// line naming the field. Pure functions; thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "coordinator/transport/participant_channel.h"
#include "txn/v1/coordinator.pb.h"

namespace txn::driver {

inline constexpr int kMaxBranchesPerTxn = 64;
inline constexpr int kMaxOperationsPerBranch = 1000;
// Idempotency keys are kept in memory and in the log: a UUID or a request id, not a payload.
inline constexpr size_t kMaxIdempotencyKeyBytes = 256;
inline constexpr uint32_t kMaxTimeoutMs = 3'600'000;

absl::Status ValidateProtocol(v1::Protocol protocol, const std::string& field);
absl::Status ValidateOperation(const v1::Operation& op, const std::string& field);
absl::Status ValidateRun(const v1::RunRequest& req, const transport::ParticipantDirectory& dir);
absl::Status ValidateIdempotencyKey(const std::string& key);
absl::Status ValidateBegin(const v1::BeginRequest& req);
absl::Status ValidateTxnId(const std::string& txn_id);

// A digest of the request without its idempotency key, to tell a retry from a different request.
std::string Fingerprint(const google::protobuf::Message& request_without_key);

}  // namespace txn::driver
