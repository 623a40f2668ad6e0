// SIGINT/SIGTERM (and SIGHUP) handling for the daemons: block them in every thread (call first
// in main, before any thread starts), then wait for one in main with sigwait. Written here
// because the daemons need an orderly shutdown, and SIGHUP's reload, on the main thread, not a
// handler in async-signal context.
#pragma once

#include <signal.h>

#include <functional>

namespace txn::common {

inline sigset_t TerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  return signals;
}

inline void BlockTerminationSignals() {
  sigset_t signals = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

// Returns the signal number once SIGINT or SIGTERM arrives; runs `on_hangup` at each SIGHUP.
inline int WaitForTerminationSignal(const std::function<void()>& on_hangup = {}) {
  sigset_t signals = TerminationSignals();
  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != SIGHUP) return sig;
    if (on_hangup) on_hangup();
  }
}

}  // namespace txn::common
