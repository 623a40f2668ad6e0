// Three-phase commit on the wire: conversions between txn.v1's Ballot / TerminationReply and the
// shared rules' types (three_phase_quorum.h). Used by the coordinator's driver and by the agents.
#pragma once

#include "protocol/three_phase_quorum.h"
#include "txn/v1/participant.pb.h"

namespace txn::protocol {

protocol::Ballot BallotFromProto(const v1::Ballot& b);
v1::Ballot BallotToProto(const protocol::Ballot& b);
v1::TerminationReply ReplyToProto(const protocol::TpcReply& r);
protocol::TpcReply ReplyFromProto(const v1::TerminationReply& r);

}  // namespace txn::protocol
