#include "coordinator/driver/request_validation.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <functional>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/statement_guard.h"
#include "common/status_macros.h"

namespace txn::driver {

absl::Status ValidateProtocol(v1::Protocol protocol, const std::string& field) {
  switch (protocol) {
    case v1::PROTOCOL_TWO_PHASE:
      return absl::OkStatus();
    case v1::PROTOCOL_SAGA:
      return absl::OkStatus();
    case v1::PROTOCOL_THREE_PHASE:
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          field, " must be PROTOCOL_TWO_PHASE, PROTOCOL_THREE_PHASE or PROTOCOL_SAGA"));
  }
}

absl::Status ValidateOperation(const v1::Operation& op, const std::string& field) {
  if (op.has_sql()) {
    const v1::Sql& sql = op.sql();
    if (sql.text().empty() && sql.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".sql has neither text nor name"));
    }
    if (!sql.text().empty() && !sql.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".sql has both text and name (a named statement brings its own)"));
    }
    if (!sql.text().empty()) {
      if (absl::Status s = common::CheckStatement(sql.text(), common::SqlDialect::kGeneric);
          !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".sql.text: ", s.message()));
      }
    }
    for (uint32_t idx : sql.null_params()) {
      if (idx >= static_cast<uint32_t>(sql.params_size())) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".sql.null_params: index ", idx,
                                                       " but only ", sql.params_size(), " params"));
      }
    }
    if (sql.has_expect_rows_affected() && sql.expect_rows_affected() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".sql.expect_rows_affected must not be negative"));
    }
    return absl::OkStatus();
  }
  if (op.has_mongo()) {
    if (op.mongo().collection().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".mongo.collection is empty"));
    }
    if (op.mongo().kind() == v1::MongoOp::KIND_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".mongo.kind is unspecified"));
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(field, " has neither sql nor mongo"));
}

absl::Status ValidateIdempotencyKey(const std::string& key) {
  if (key.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("idempotency_key has ", key.size(),
                                                   " bytes; at most ", kMaxIdempotencyKeyBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateRun(const v1::RunRequest& req, const transport::ParticipantDirectory& dir) {
  TXN_RETURN_IF_ERROR(ValidateProtocol(req.protocol(), "protocol"));
  TXN_RETURN_IF_ERROR(ValidateIdempotencyKey(req.idempotency_key()));
  if (req.branches().empty()) return absl::InvalidArgumentError("branches is empty");
  if (req.branches_size() > kMaxBranchesPerTxn) {
    return absl::InvalidArgumentError(absl::StrCat("branches has ", req.branches_size(),
                                                   " entries; at most ", kMaxBranchesPerTxn));
  }
  if (req.timeout_ms() > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(absl::StrCat("timeout_ms must be at most ", kMaxTimeoutMs));
  }
  for (int b = 0; b < req.branches_size(); ++b) {
    const v1::Branch& br = req.branches(b);
    const std::string field = absl::StrCat("branches[", b, "]");
    if (br.participant().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".participant is empty"));
    }
    if (dir.Find(br.participant()) == nullptr) {
      return absl::NotFoundError(absl::StrCat(field, ".participant '",
                                              br.participant().substr(0, 100),
                                              "' is not a configured participant"));
    }
    if (br.operations_size() > kMaxOperationsPerBranch) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".operations has more than ", kMaxOperationsPerBranch, " entries"));
    }
    if (!br.compensations().empty() && req.protocol() != v1::PROTOCOL_SAGA) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".compensations are only for PROTOCOL_SAGA"));
    }
    for (int i = 0; i < br.operations_size(); ++i) {
      TXN_RETURN_IF_ERROR(
          ValidateOperation(br.operations(i), absl::StrCat(field, ".operations[", i, "]")));
    }
    if (br.compensations_size() > kMaxOperationsPerBranch) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".compensations has more than ",
                                                     kMaxOperationsPerBranch, " entries"));
    }
    for (int i = 0; i < br.compensations_size(); ++i) {
      TXN_RETURN_IF_ERROR(
          ValidateOperation(br.compensations(i), absl::StrCat(field, ".compensations[", i, "]")));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBegin(const v1::BeginRequest& req) {
  TXN_RETURN_IF_ERROR(ValidateProtocol(req.protocol(), "protocol"));
  if (req.protocol() == v1::PROTOCOL_SAGA) {
    return absl::FailedPreconditionError(
        "protocol: PROTOCOL_SAGA runs through Run only (its steps and compensations are given up "
        "front); Begin is for PROTOCOL_TWO_PHASE");
  }
  if (req.protocol() == v1::PROTOCOL_THREE_PHASE) {
    return absl::UnimplementedError(
        "protocol: PROTOCOL_THREE_PHASE runs through Run only in this build; Begin is for "
        "PROTOCOL_TWO_PHASE");
  }
  TXN_RETURN_IF_ERROR(ValidateIdempotencyKey(req.idempotency_key()));
  if (req.timeout_ms() > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(absl::StrCat("timeout_ms must be at most ", kMaxTimeoutMs));
  }
  return absl::OkStatus();
}

absl::Status ValidateTxnId(const std::string& txn_id) {
  if (txn_id.empty()) return absl::InvalidArgumentError("txn_id is empty");
  if (!common::IsValidTxnId(txn_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("txn_id '", txn_id.substr(0, 80), "' is not a transaction id"));
  }
  return absl::OkStatus();
}

std::string Fingerprint(const google::protobuf::Message& request_without_key) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    request_without_key.SerializeToCodedStream(&coded);
  }
  // std::hash of libstdc++ is deterministic across processes (unlike absl::Hash), so the
  // fingerprint can be stored in the log and compared after a restart.
  return absl::StrCat(std::hash<std::string>{}(bytes), ":", bytes.size());
}

}  // namespace txn::driver
