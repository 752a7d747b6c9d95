// Trains the least-squares problem (tests/comm/lsq.h) through an InprocCluster, one
// thread per worker, for the in-process comm tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "comm/inproc.h"
#include "comm/optimizer.h"
#include "tests/comm/lsq.h"

namespace gradzip::comm::testing {

inline constexpr std::size_t kRows = 24;

struct TrainResult {
  std::vector<std::vector<float>> worker_params;  // after the last pull
  std::vector<double> first_loss, last_loss;
  std::vector<FaultCounts> request_faults, reply_faults;  // per worker
  std::vector<TrafficCounters> counters;                  // each worker's, at the end
  /// Sum over workers of `kind` (e.g. &FaultCounts::dropped) in one direction.
  static std::uint64_t total(const std::vector<FaultCounts>& v, std::uint64_t FaultCounts::*kind) {
    std::uint64_t n = 0;
    for (const auto& c : v) n += c.*kind;
    return n;
  }
};

/// How a worker pulls the parameters of `step` (default: one pull of everything).
using PullFn = std::function<void(RequestClient& t, std::uint64_t step, float* x)>;

// Trains `steps` steps with one thread per worker; `stop_after[w]` (if set) makes worker
// w quit after that many steps (a dead worker).
inline TrainResult train(InprocCluster& cluster, std::uint32_t workers, std::uint64_t steps, const std::string& spec,
                         ClientOptions co = {}, std::vector<std::uint64_t> stop_after = {}, const PullFn& pull = {}) {
  const auto& sig = cluster.signature();
  const std::size_t d = sig.total_numel();
  TrainResult res;
  res.worker_params.assign(workers, {});
  res.first_loss.assign(workers, 0.0);
  res.last_loss.assign(workers, 0.0);
  res.request_faults.assign(workers, {});
  res.reply_faults.assign(workers, {});
  res.counters.assign(workers, {});
  std::vector<std::string> errors(workers);
  std::vector<std::thread> threads;
  for (std::uint32_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      try {
        auto t = cluster.make_worker(co);
        LsqProblem prob(d, kRows, w);
        BucketEncoder enc(spec);
        std::vector<float> x = initial_params(d), g(d);
        t->connect(sig, w, x.data());
        const std::uint64_t last = stop_after.empty() ? steps : std::min(steps, stop_after[w]);
        const std::uint64_t first = t->resume_step();
        for (std::uint64_t step = first; step < last; ++step) {
          const double loss = prob.gradient(x.data(), g.data());
          if (step == first) res.first_loss[w] = loss;
          res.last_loss[w] = loss;
          auto msgs = enc.encode(t->layout(), g.data(), step, w);
          std::vector<Handle> hs;
          for (std::uint32_t b = 0; b < msgs.size(); ++b) {
            hs.push_back(t->push(step, b, msgs[b].data(), msgs[b].size()));
          }
          for (auto h : hs) t->wait(h);
          if (pull) {
            pull(*t, step, x.data());
          } else {
            t->wait(t->pull(step, x.data()));
          }
        }
        res.worker_params[w] = x;
        res.counters[w] = t->counters();
        res.request_faults[w] = t->request_fault_counts();
        res.reply_faults[w] = t->reply_fault_counts();
        // Done, as a real worker says (its rank may then be claimed by a new connection);
        // a worker stopped early plays a dead one and says nothing.
        if (last == steps) t->shutdown();
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (std::uint32_t w = 0; w < workers; ++w) EXPECT_EQ(errors[w], "") << "worker " << w;
  return res;
}

inline double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace gradzip::comm::testing
