// Three-phase commit on the wire: conversions between txn.v1's Ballot / TerminationReply and the
// pure core's types (coordinator/core/three_phase_quorum.h). Used by the coordinator's driver and
// by the agents.
#pragma once

#include "coordinator/core/three_phase_quorum.h"
#include "txn/v1/participant.pb.h"

namespace txn::common {

core::Ballot BallotFromProto(const v1::Ballot& b);
v1::Ballot BallotToProto(const core::Ballot& b);
v1::TerminationReply ReplyToProto(const core::TpcReply& r);
core::TpcReply ReplyFromProto(const v1::TerminationReply& r);

}  // namespace txn::common
