#include "participant-agent/adapters/mysql/parked_xa_connections.h"

#include <vector>

namespace txn::agent {

ParkedXaConnections::~ParkedXaConnections() {
  for (auto& [gid, p] : parked_) p.conn->Discard();
}

void ParkedXaConnections::Park(const std::string& gid, std::unique_ptr<MysqlConnection> conn) {
  std::unique_ptr<MysqlConnection> closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (parked_.size() < max_parked_ && parked_.find(gid) == parked_.end()) {
      parked_.emplace(gid, Parked{std::move(conn), std::chrono::steady_clock::now()});
      return;
    }
    closing = std::move(conn);
    NoteDetached(gid, closing->thread_id());
  }
  closing->Discard();  // closed outside the lock; the server detaches the prepared branch
}

std::unique_ptr<MysqlConnection> ParkedXaConnections::Take(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = parked_.find(gid);
  if (it == parked_.end()) return nullptr;
  std::unique_ptr<MysqlConnection> conn = std::move(it->second.conn);
  parked_.erase(it);
  return conn;
}

size_t ParkedXaConnections::CloseOlderThan(std::chrono::steady_clock::duration age) {
  std::vector<std::unique_ptr<MysqlConnection>> closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto cutoff = std::chrono::steady_clock::now() - age;
    for (auto it = parked_.begin(); it != parked_.end();) {
      if (it->second.since < cutoff) {
        NoteDetached(it->first, it->second.conn->thread_id());
        closing.push_back(std::move(it->second.conn));
        it = parked_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : closing) c->Discard();
  return closing.size();
}

void ParkedXaConnections::NoteDetached(const std::string& gid, int64_t thread_id) {
  // Bounded: an entry is dropped when its branch is finished here (Finished); one finished some
  // other way (another agent, by hand) would stay, so past the cap the first-keyed go first.
  if (detached_.size() >= kMaxDetached) detached_.erase(detached_.begin());
  detached_[gid] = thread_id;
}

void ParkedXaConnections::Finished(const std::string& gid) {
  std::lock_guard<std::mutex> lock(mu_);
  detached_.erase(gid);
}

void ParkedXaConnections::RememberClosed(const std::string& gid, int64_t thread_id) {
  std::lock_guard<std::mutex> lock(mu_);
  NoteDetached(gid, thread_id);
}

size_t ParkedXaConnections::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_.size();
}

std::vector<std::pair<int64_t, std::string>> ParkedXaConnections::ThreadIds() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<int64_t, std::string>> out;
  out.reserve(parked_.size());
  for (const auto& [gid, p] : parked_) out.emplace_back(p.conn->thread_id(), gid);
  for (const auto& [gid, thread] : detached_) out.emplace_back(thread, gid);
  return out;
}

}  // namespace txn::agent
