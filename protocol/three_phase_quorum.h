// The quorum termination of three-phase commit (E3PC with ballots, docs/three-phase.md
// sections 1-5 and 8), as pure functions and one pure class, shared by both sides:
//
//   - what a participant does with ELECT, PRE_COMMIT / PRE_ABORT and COMMIT / ABORT, given the
//     record it keeps (OnElect, OnPreDecide, OnDecision: rules E1-E3). Each returns the record
//     to persist, in one atomic write, *before* the reply goes out;
//   - the decision rule over the states a candidate collected (ApplyTerminationRule, section 4);
//   - a termination round run by a candidate (TerminationRound, steps T2-T7): a participant that
//     timed out, or the coordinator after a restart or when pre-commit ACKs stall.
//
// No I/O, clock or threads. The SPIN model of this protocol is tests/model/three_phase_quorum.pml
// (checked by tests/model/check_models.sh): it names the same states (W, PC, PA, C, A), ballots
// (LE = promised, LA = attempted) and messages; change both together.
//
// Ballots are (round, owner), compared lexicographically; the owner is the participant's name, or
// "" for the coordinator, so two candidates never share a ballot. B0 = (1, "") is the normal
// case's PRE_COMMIT. A candidate that is a participant promises its own ballot first by applying
// OnElect to its own record, and accepts its own PRE_x with OnPreDecide, feeding both replies to
// its round like anyone else's: so it never acts on a round it has since promised away (the model
// found that mistake when the candidate skipped its own check).
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "protocol/decision.h"

namespace txn::protocol {

struct Ballot {
  uint64_t round = 0;  // 0: no ballot (LA before any pre-commit / pre-abort)
  std::string owner;   // participant name; "" is the coordinator
  friend auto operator<=>(const Ballot&, const Ballot&) = default;
  bool empty() const { return round == 0; }
};

// The coordinator's PRE_COMMIT after all YES votes.
inline Ballot InitialBallot() { return Ballot{1, ""}; }

std::string BallotString(const Ballot& b);

// A participant's state for one 3PC transaction. kNone (q) is "no record": it never voted YES.
enum class TpcState { kNone, kWaiting, kPreCommitted, kPreAborted, kCommitted, kAborted };

absl::string_view TpcStateName(TpcState s);
inline bool IsFinal(TpcState s) { return s == TpcState::kCommitted || s == TpcState::kAborted; }

// What a participant persists per transaction (section 8), beside the database's prepared
// transaction. Records of decided transactions are kept: a reclaimed record would read as "never
// voted YES", and a late ELECT would then be answered with a unilateral abort.
struct TpcRecord {
  TpcState state = TpcState::kNone;
  Ballot promised;                   // LE
  Ballot attempted;                  // LA
  std::vector<std::string> members;  // every participant of the transaction, in branch order
};

// The record a participant writes after its database PREPARE and before it votes YES.
TpcRecord WaitingRecord(std::vector<std::string> members);

size_t QuorumOf(size_t members);

enum class Direction { kPreCommit, kPreAbort };

// A participant's answer to ELECT or PRE_x.
struct TpcReply {
  enum class Kind { kState, kAck, kNack, kDecided };
  Kind kind = Kind::kNack;
  Ballot ballot;  // kState, kAck: the ballot answered. kNack: the participant's promise.
  TpcState state = TpcState::kNone;  // kState: its state (W, PC, PA); kDecided: C or A
  Ballot attempted;                  // kState: its LA
};

struct Handled {
  std::optional<TpcRecord> persist;  // write this before sending `reply`; nullopt: no change
  TpcReply reply;
};

// E1. No record -> persist A, DECIDED(A) (it never voted YES, so it may abort on its own);
// decided -> DECIDED; b > LE -> persist LE=b, STATE; b == LE (the same candidate again) -> STATE;
// otherwise NACK(LE).
Handled OnElect(const std::optional<TpcRecord>& rec, const Ballot& b);
// E2. Decided -> DECIDED; no record -> NACK (nothing pre-decides a branch that never voted YES:
// the PRE_COMMIT at B0 needs every YES); b < LE -> NACK(LE); otherwise persist
// {PC|PA, LA=b, LE=b}, ACK(b).
Handled OnPreDecide(const std::optional<TpcRecord>& rec, const Ballot& b, Direction d);
// E3. Persist C/A (a decision never changes: a second, different one is refused by the caller's
// check of the returned record, see DecisionConflicts).
Handled OnDecision(const std::optional<TpcRecord>& rec, Decision d);
// A participant that already holds the opposite final state: a bug somewhere (the model says it
// cannot happen); callers report it loudly instead of applying it.
bool DecisionConflicts(const std::optional<TpcRecord>& rec, Decision d);

// Section 4, over the states collected from distinct members (replies to one ELECT(b)).
enum class RuleAction { kBlock, kPreCommit, kPreAbort, kCommit, kAbort };
struct CollectedState {
  TpcState state = TpcState::kWaiting;
  Ballot attempted;
};
RuleAction ApplyTerminationRule(const std::vector<CollectedState>& collected, size_t members);

// One termination round of a candidate at ballot `ballot` (T2-T7). The driver sends ELECT(ballot)
// to every member (a participant candidate includes itself, see above), feeds the replies in, and
// does what each Next says. A timeout with no decision is the driver's: it drops the round (the
// transaction blocks) and starts a new one later with NextRound().
class TerminationRound {
 public:
  struct Next {
    enum class Kind { kWait, kSendPreDecide, kDecided, kAbandon };
    Kind kind = Kind::kWait;
    Direction direction = Direction::kPreAbort;  // kSendPreDecide: to every member
    Decision decision = Decision::kNone;         // kDecided: persist it, then send it to all
  };

  TerminationRound(Ballot ballot, std::vector<std::string> members);

  const Ballot& ballot() const { return ballot_; }
  bool pre_deciding() const { return direction_.has_value(); }
  // The highest round any reply showed: the next ballot must be above it.
  uint64_t highest_round_seen() const { return highest_round_; }

  Next OnElectReply(const std::string& member, const TpcReply& reply);
  Next OnPreDecideReply(const std::string& member, const TpcReply& reply);

 private:
  bool IsMember(const std::string& m) const;
  Next See(const TpcReply& reply);

  Ballot ballot_;
  std::vector<std::string> members_;
  uint64_t highest_round_ = 0;
  std::map<std::string, CollectedState> states_;
  std::optional<Direction> direction_;
  std::map<std::string, bool> acks_;
  bool finished_ = false;
};

// The ballot for a candidate's next round: above everything it has seen and promised.
Ballot NextBallot(uint64_t highest_round_seen, const std::string& owner);

}  // namespace txn::protocol
