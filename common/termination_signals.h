// SIGINT/SIGTERM handling for the daemons: block both in every thread (call first in main,
// before any thread starts), then wait for one in main with sigwait. Written here because the
// daemons need an orderly shutdown on the main thread, not a handler in async-signal context.
#pragma once

#include <signal.h>

namespace txn::common {

inline sigset_t TerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

inline void BlockTerminationSignals() {
  sigset_t signals = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// Returns the signal number once SIGINT or SIGTERM arrives.
inline int WaitForTerminationSignal() {
  sigset_t signals = TerminationSignals();
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

}  // namespace txn::common
