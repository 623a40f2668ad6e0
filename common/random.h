// RandomSource: the one way code outside coordinator/core draws random numbers (retry jitter),
// so that a simulation run (tests/sim) is decided by its seed alone. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>

namespace txn::common {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // A number in [0, 1).
  virtual double NextUnit() = 0;
};

// A Mersenne twister behind a mutex, seeded from std::random_device unless given a seed.
class SeededRandom final : public RandomSource {
 public:
  SeededRandom() : engine_(std::random_device{}()) {}
  explicit SeededRandom(uint64_t seed) : engine_(seed) {}
  double NextUnit() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;  // guarded by mu_
};

}  // namespace txn::common
