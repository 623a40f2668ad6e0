#include "protocol/three_phase_wire.h"

namespace txn::protocol {

using protocol::TpcState;

namespace {

v1::TpcState StateToProto(TpcState s) {
  switch (s) {
    case TpcState::kNone:
      return v1::TPC_STATE_UNSPECIFIED;
    case TpcState::kWaiting:
      return v1::TPC_STATE_WAITING;
    case TpcState::kPreCommitted:
      return v1::TPC_STATE_PRE_COMMITTED;
    case TpcState::kPreAborted:
      return v1::TPC_STATE_PRE_ABORTED;
    case TpcState::kCommitted:
      return v1::TPC_STATE_COMMITTED;
    case TpcState::kAborted:
      return v1::TPC_STATE_ABORTED;
  }
  return v1::TPC_STATE_UNSPECIFIED;
}

TpcState StateFromProto(v1::TpcState s) {
  switch (s) {
    case v1::TPC_STATE_WAITING:
      return TpcState::kWaiting;
    case v1::TPC_STATE_PRE_COMMITTED:
      return TpcState::kPreCommitted;
    case v1::TPC_STATE_PRE_ABORTED:
      return TpcState::kPreAborted;
    case v1::TPC_STATE_COMMITTED:
      return TpcState::kCommitted;
    case v1::TPC_STATE_ABORTED:
      return TpcState::kAborted;
    default:
      return TpcState::kNone;
  }
}

}  // namespace

protocol::Ballot BallotFromProto(const v1::Ballot& b) { return protocol::Ballot{b.round(), b.owner()}; }

v1::Ballot BallotToProto(const protocol::Ballot& b) {
  v1::Ballot out;
  out.set_round(b.round);
  out.set_owner(b.owner);
  return out;
}

v1::TerminationReply ReplyToProto(const protocol::TpcReply& r) {
  v1::TerminationReply out;
  switch (r.kind) {
    case protocol::TpcReply::Kind::kState:
      out.set_kind(v1::TerminationReply::KIND_STATE);
      break;
    case protocol::TpcReply::Kind::kAck:
      out.set_kind(v1::TerminationReply::KIND_ACK);
      break;
    case protocol::TpcReply::Kind::kNack:
      out.set_kind(v1::TerminationReply::KIND_NACK);
      break;
    case protocol::TpcReply::Kind::kDecided:
      out.set_kind(v1::TerminationReply::KIND_DECIDED);
      break;
  }
  *out.mutable_ballot() = BallotToProto(r.ballot);
  out.set_state(StateToProto(r.state));
  *out.mutable_attempted() = BallotToProto(r.attempted);
  return out;
}

protocol::TpcReply ReplyFromProto(const v1::TerminationReply& r) {
  protocol::TpcReply out;
  switch (r.kind()) {
    case v1::TerminationReply::KIND_STATE:
      out.kind = protocol::TpcReply::Kind::kState;
      break;
    case v1::TerminationReply::KIND_ACK:
      out.kind = protocol::TpcReply::Kind::kAck;
      break;
    case v1::TerminationReply::KIND_DECIDED:
      out.kind = protocol::TpcReply::Kind::kDecided;
      break;
    default:
      out.kind = protocol::TpcReply::Kind::kNack;
      break;
  }
  out.ballot = BallotFromProto(r.ballot());
  out.state = StateFromProto(r.state());
  out.attempted = BallotFromProto(r.attempted());
  return out;
}

}  // namespace txn::protocol
