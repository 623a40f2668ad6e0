#include "participant-agent/statement_allow_list.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "common/file_text.h"
#include "common/statement_guard.h"

namespace txn::agent {

absl::StatusOr<StatementAllowList> StatementAllowList::Parse(absl::string_view yaml,
                                                             common::SqlDialect dialect) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--statements: not YAML: ", e.what()));
  }
  if (!root.IsMap() || root.size() == 0) {
    return absl::InvalidArgumentError(
        "--statements: expected a map of NAME: {sql: TEXT, params: N}, with at least one entry");
  }
  StatementAllowList list;
  for (const auto& entry : root) {
    const std::string name = entry.first.as<std::string>("");
    const YAML::Node& body = entry.second;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("--statements: '", name.substr(0, 60),
                                                     "': ", why));
    };
    if (name.empty()) return bad("an entry has no name");
    if (!body.IsMap() || !body["sql"] || !body["params"]) {
      return bad("expected {sql: TEXT, params: N}");
    }
    Statement st;
    try {
      st.sql = body["sql"].as<std::string>();
      st.params = body["params"].as<int>();
    } catch (const YAML::Exception&) {
      return bad("sql must be text and params a number");
    }
    if (st.params < 0 || static_cast<size_t>(st.params) > common::kMaxStatementParameters) {
      return bad("params is out of range");
    }
    if (absl::Status s = common::CheckStatement(st.sql, dialect); !s.ok()) return bad(s.message());
    list.statements_[name] = std::move(st);
  }
  return list;
}

absl::StatusOr<StatementAllowList> StatementAllowList::Load(const std::string& path,
                                                            common::SqlDialect dialect) {
  std::optional<std::string> text = common::ReadFileText(path);
  if (!text) return absl::NotFoundError(absl::StrCat("--statements ", path, ": cannot read"));
  return Parse(*text, dialect);
}

absl::StatusOr<v1::Operation> StatementAllowList::Resolve(const v1::Operation& op) const {
  if (!op.has_sql()) return op;
  const v1::Sql& sql = op.sql();
  if (sql.name().empty()) {
    return absl::PermissionDeniedError(
        "raw SQL is refused: this agent runs only the statements of its allow-list "
        "(--statements); name one in sql.name");
  }
  auto it = statements_.find(sql.name());
  if (it == statements_.end()) {
    return absl::NotFoundError(absl::StrCat("statement '", sql.name().substr(0, 60),
                                            "' is not in this agent's allow-list"));
  }
  if (sql.params_size() != it->second.params) {
    return absl::InvalidArgumentError(absl::StrCat("statement '", sql.name(), "' takes ",
                                                   it->second.params, " parameters, got ",
                                                   sql.params_size()));
  }
  v1::Operation resolved = op;
  resolved.mutable_sql()->set_text(it->second.sql);
  resolved.mutable_sql()->clear_name();
  return resolved;
}

absl::StatusOr<v1::Operation> ResolveOperation(const StatementAllowList* list,
                                               const v1::Operation& op) {
  if (list != nullptr) return list->Resolve(op);
  if (op.has_sql() && !op.sql().name().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "operation names statement '", op.sql().name().substr(0, 60),
        "', but this agent has no allow-list (--statements); send sql.text instead"));
  }
  return op;
}

}  // namespace txn::agent
