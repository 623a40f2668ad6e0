#include "participant-agent/adapters/mysql/mysql_dsn.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace txn::agent {
namespace {

std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

absl::Status SetKey(MysqlDsn& d, const std::string& key, const std::string& value) {
  if (key == "host") {
    d.host = value;
  } else if (key == "port") {
    if (!absl::SimpleAtoi(value, &d.port) || d.port == 0 || d.port > 65535) {
      return absl::InvalidArgumentError("--dsn: port is not a number in 1..65535");
    }
  } else if (key == "user") {
    d.user = value;
  } else if (key == "password") {
    d.password = value;
  } else if (key == "dbname" || key == "database") {
    d.dbname = value;
  } else if (key == "socket") {
    d.socket = value;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dsn: unknown key '", key, "' (host, port, user, password, dbname, socket)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<MysqlDsn> ParseUri(absl::string_view rest) {
  MysqlDsn d;
  auto slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    absl::string_view path = rest.substr(slash + 1);
    path = path.substr(0, path.find('?'));
    d.dbname = PercentDecode(path);
  }
  if (auto at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    d.user = PercentDecode(userinfo.substr(0, colon));
    if (colon != absl::string_view::npos) d.password = PercentDecode(userinfo.substr(colon + 1));
  }
  if (auto colon = authority.rfind(':'); colon != absl::string_view::npos) {
    absl::Status s = SetKey(d, "port", std::string(authority.substr(colon + 1)));
    if (!s.ok()) return s;
    authority = authority.substr(0, colon);
  }
  if (!authority.empty()) d.host = std::string(authority);
  return d;
}

}  // namespace

absl::StatusOr<MysqlDsn> ParseMysqlDsn(const std::string& dsn) {
  absl::string_view rest = dsn;
  if (absl::ConsumePrefix(&rest, "mysql://") || absl::ConsumePrefix(&rest, "mariadb://")) {
    return ParseUri(rest);
  }
  MysqlDsn d;
  size_t i = 0;
  while (i < dsn.size()) {
    while (i < dsn.size() && std::isspace(static_cast<unsigned char>(dsn[i]))) ++i;
    if (i >= dsn.size()) break;
    size_t eq = dsn.find('=', i);
    if (eq == std::string::npos) {
      // Never quoted: the text may be (part of) a password.
      return absl::InvalidArgumentError(
          absl::StrCat("--dsn: expected key=value at byte ", i, " (the text is not shown: it may "
                       "hold a password)"));
    }
    std::string key(absl::StripAsciiWhitespace(dsn.substr(i, eq - i)));
    std::string value;
    i = eq + 1;
    if (i < dsn.size() && dsn[i] == '\'') {
      ++i;
      while (i < dsn.size() && dsn[i] != '\'') {
        if (dsn[i] == '\\' && i + 1 < dsn.size()) ++i;
        value.push_back(dsn[i++]);
      }
      if (i >= dsn.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--dsn: unterminated quote after ", key));
      }
      ++i;
    } else {
      while (i < dsn.size() && !std::isspace(static_cast<unsigned char>(dsn[i]))) {
        value.push_back(dsn[i++]);
      }
    }
    absl::Status s = SetKey(d, key, value);
    if (!s.ok()) return s;
  }
  return d;
}

}  // namespace txn::agent
