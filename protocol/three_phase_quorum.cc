#include "protocol/three_phase_quorum.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace txn::protocol {

std::string BallotString(const Ballot& b) {
  if (b.empty()) return "-";
  return absl::StrCat(b.round, "/", b.owner.empty() ? "coordinator" : b.owner);
}

absl::string_view TpcStateName(TpcState s) {
  switch (s) {
    case TpcState::kNone:
      return "NONE";
    case TpcState::kWaiting:
      return "W";
    case TpcState::kPreCommitted:
      return "PC";
    case TpcState::kPreAborted:
      return "PA";
    case TpcState::kCommitted:
      return "C";
    case TpcState::kAborted:
      return "A";
  }
  return "?";
}

TpcRecord WaitingRecord(std::vector<std::string> members) {
  return TpcRecord{.state = TpcState::kWaiting,
                   .promised = InitialBallot(),
                   .attempted = Ballot{},
                   .members = std::move(members)};
}

size_t QuorumOf(size_t members) { return members / 2 + 1; }

namespace {

TpcReply Decided(TpcState s) { return TpcReply{.kind = TpcReply::Kind::kDecided, .state = s}; }
TpcReply Nack(const Ballot& promised) {
  return TpcReply{.kind = TpcReply::Kind::kNack, .ballot = promised};
}

}  // namespace

Handled OnElect(const std::optional<TpcRecord>& rec, const Ballot& b) {
  if (!rec || rec->state == TpcState::kNone) {
    TpcRecord aborted{.state = TpcState::kAborted};
    return Handled{aborted, Decided(TpcState::kAborted)};
  }
  if (IsFinal(rec->state)) return Handled{std::nullopt, Decided(rec->state)};
  if (b > rec->promised) {
    TpcRecord promised = *rec;
    promised.promised = b;
    return Handled{promised, TpcReply{.kind = TpcReply::Kind::kState,
                                      .ballot = b,
                                      .state = rec->state,
                                      .attempted = rec->attempted}};
  }
  if (b == rec->promised) {
    return Handled{std::nullopt, TpcReply{.kind = TpcReply::Kind::kState,
                                          .ballot = b,
                                          .state = rec->state,
                                          .attempted = rec->attempted}};
  }
  return Handled{std::nullopt, Nack(rec->promised)};
}

Handled OnPreDecide(const std::optional<TpcRecord>& rec, const Ballot& b, Direction d) {
  if (!rec || rec->state == TpcState::kNone) return Handled{std::nullopt, Nack(Ballot{})};
  if (IsFinal(rec->state)) return Handled{std::nullopt, Decided(rec->state)};
  if (b < rec->promised) return Handled{std::nullopt, Nack(rec->promised)};
  const TpcState target =
      d == Direction::kPreCommit ? TpcState::kPreCommitted : TpcState::kPreAborted;
  TpcReply ack{.kind = TpcReply::Kind::kAck, .ballot = b};
  // A retransmitted PRE_x it already accepted: nothing to write.
  if (rec->state == target && rec->attempted == b && rec->promised == b) {
    return Handled{std::nullopt, ack};
  }
  TpcRecord accepted = *rec;
  accepted.state = target;
  accepted.attempted = b;
  accepted.promised = b;
  return Handled{accepted, ack};
}

bool DecisionConflicts(const std::optional<TpcRecord>& rec, Decision d) {
  if (!rec) return false;
  return (d == Decision::kCommit && rec->state == TpcState::kAborted) ||
         (d == Decision::kAbort && rec->state == TpcState::kCommitted);
}

Handled OnDecision(const std::optional<TpcRecord>& rec, Decision d) {
  const TpcState target = d == Decision::kCommit ? TpcState::kCommitted : TpcState::kAborted;
  if (rec && IsFinal(rec->state)) return Handled{std::nullopt, Decided(rec->state)};
  TpcRecord decided = rec.value_or(TpcRecord{});
  decided.state = target;
  return Handled{decided, Decided(target)};
}

RuleAction ApplyTerminationRule(const std::vector<CollectedState>& collected, size_t members) {
  bool any_committed = false;
  for (const CollectedState& c : collected) {
    if (c.state == TpcState::kAborted) return RuleAction::kAbort;  // row 1
    any_committed = any_committed || c.state == TpcState::kCommitted;
  }
  if (any_committed) return RuleAction::kCommit;                        // row 2
  if (collected.size() < QuorumOf(members)) return RuleAction::kBlock;  // row 3
  Ballot max_attempt;
  for (const CollectedState& c : collected) max_attempt = std::max(max_attempt, c.attempted);
  if (max_attempt.empty()) return RuleAction::kPreAbort;  // all W: row 5
  // Row 4 / 5: the direction of the latest attempt. Ballots are unique, so everyone who
  // accepted it accepted the same direction.
  for (const CollectedState& c : collected) {
    if (c.attempted == max_attempt && c.state != TpcState::kPreCommitted) {
      return RuleAction::kPreAbort;
    }
  }
  return RuleAction::kPreCommit;
}

TerminationRound::TerminationRound(Ballot ballot, std::vector<std::string> members)
    : ballot_(std::move(ballot)), members_(std::move(members)), highest_round_(ballot_.round) {}

bool TerminationRound::IsMember(const std::string& m) const {
  return std::find(members_.begin(), members_.end(), m) != members_.end();
}

// Replies that end the round whatever phase it is in.
TerminationRound::Next TerminationRound::See(const TpcReply& reply) {
  highest_round_ = std::max(highest_round_, reply.ballot.round);
  if (reply.kind == TpcReply::Kind::kDecided) {
    if (!IsFinal(reply.state)) return Next{};  // malformed: not a decision
    finished_ = true;
    return Next{
        .kind = Next::Kind::kDecided,
        .decision = reply.state == TpcState::kCommitted ? Decision::kCommit : Decision::kAbort};
  }
  if (reply.kind == TpcReply::Kind::kNack) {
    // Promised to a later candidate (or, for PRE_x, never voted YES): this round cannot finish.
    finished_ = true;
    return Next{.kind = Next::Kind::kAbandon};
  }
  return Next{};
}

TerminationRound::Next TerminationRound::OnElectReply(const std::string& member,
                                                      const TpcReply& reply) {
  if (finished_ || direction_ || !IsMember(member)) return Next{};
  if (Next n = See(reply); n.kind != Next::Kind::kWait) return n;
  if (reply.kind != TpcReply::Kind::kState || reply.ballot != ballot_) return Next{};  // stale
  states_[member] = CollectedState{reply.state, reply.attempted};
  std::vector<CollectedState> collected;
  for (const auto& [m, s] : states_) collected.push_back(s);
  switch (ApplyTerminationRule(collected, members_.size())) {
    case RuleAction::kBlock:
      return Next{};
    case RuleAction::kCommit:
      finished_ = true;
      return Next{.kind = Next::Kind::kDecided, .decision = Decision::kCommit};
    case RuleAction::kAbort:
      finished_ = true;
      return Next{.kind = Next::Kind::kDecided, .decision = Decision::kAbort};
    case RuleAction::kPreCommit:
      direction_ = Direction::kPreCommit;
      break;
    case RuleAction::kPreAbort:
      direction_ = Direction::kPreAbort;
      break;
  }
  return Next{.kind = Next::Kind::kSendPreDecide, .direction = *direction_};
}

TerminationRound::Next TerminationRound::OnPreDecideReply(const std::string& member,
                                                          const TpcReply& reply) {
  if (finished_ || !direction_ || !IsMember(member)) return Next{};
  if (Next n = See(reply); n.kind != Next::Kind::kWait) return n;
  if (reply.kind != TpcReply::Kind::kAck || reply.ballot != ballot_) return Next{};  // stale
  acks_[member] = true;
  if (acks_.size() < QuorumOf(members_.size())) return Next{};
  finished_ = true;
  return Next{
      .kind = Next::Kind::kDecided,
      .decision = *direction_ == Direction::kPreCommit ? Decision::kCommit : Decision::kAbort};
}

Ballot NextBallot(uint64_t highest_round_seen, const std::string& owner) {
  return Ballot{highest_round_seen + 1, owner};
}

}  // namespace txn::protocol
