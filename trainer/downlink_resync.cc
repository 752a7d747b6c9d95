#include "trainer/downlink_resync.h"

#include <algorithm>
#include <cmath>

namespace gradzip::trainer {

double replace_replica(const float* dense, float* replica, std::size_t n) {
  double diff = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(replica[i] - dense[i])));
    replica[i] = dense[i];
  }
  return diff;
}

double resync_all(comm::WorkerTransport& transport, const comm::Layout& layout, std::uint64_t step, float* params,
                  std::vector<float>* scratch) {
  scratch->resize(layout.total_numel);
  std::vector<comm::Handle> handles;
  for (const auto& b : layout.buckets) handles.push_back(transport.pull_bucket(step, b.id, scratch->data(), true));
  for (comm::Handle h : handles) transport.wait(h);
  return replace_replica(scratch->data(), params, layout.total_numel);
}

}  // namespace gradzip::trainer
