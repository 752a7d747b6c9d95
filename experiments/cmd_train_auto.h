// `gradzip train --compressor auto:...` (experiments/auto_choice.h) resolved into a TrainConfig.
#pragma once

#include <nlohmann/json.hpp>

#include "trainer/train.h"

namespace gradzip::cli {

/// When cfg->compressor is "auto[:...]": measures the candidates, chooses a spec per tensor
/// of the model (channels x height x width input, `classes` outputs), and rewrites *cfg to
/// compressor "identity" plus the choice as compressor rules (after any rules the user
/// gave, which take precedence). Returns the summary.json block of the choice, or null when
/// the compressor is not auto. Throws UsageError for a bad auto spec.
nlohmann::json resolve_auto_compressor(trainer::TrainConfig* cfg, int channels, int height, int width, int classes);

}  // namespace gradzip::cli
