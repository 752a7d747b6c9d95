// A failed quant::Status inside a step of the aggregation-only modes (THC, PowerSGD) as
// the typed CommError the transports throw, naming the operation, the bucket or tensor
// and the step.
#pragma once

#include <cstdint>

#include <fmt/format.h>

#include "comm/transport.h"
#include "quant/status.h"

namespace gradzip::comm {

/// Throws CommError(kInvalidArgument) "`what` of `unit` `index` at step `step`: status"
/// when st is not ok.
inline void check_status(const quant::Status& st, const char* what, const char* unit, std::uint64_t index,
                         std::uint64_t step) {
  if (!st.ok()) {
    throw CommError(CommError::Kind::kInvalidArgument,
                    fmt::format("{} of {} {} at step {}: {}", what, unit, index, step, st.to_string()));
  }
}

}  // namespace gradzip::comm
