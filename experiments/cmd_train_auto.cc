// `gradzip train --compressor auto:link=...`: the per-tensor automatic choice
// (experiments/auto_choice.h) resolved into compressor rules before the run starts, once, in
// the process that orchestrates it (children of --cluster local/netem get the resolved
// rules as a file, so every process uses the same choice).
#include "experiments/cmd_train_auto.h"

#include <stdexcept>

#include "experiments/auto_choice.h"
#include "experiments/cli.h"
#include "quant/status.h"

namespace gradzip::cli {

nlohmann::json resolve_auto_compressor(trainer::TrainConfig* cfg, int channels, int height, int width, int classes) {
  if (!experiments::is_auto_spec(cfg->compressor)) return nullptr;
  try {
    const experiments::AutoSpec spec = experiments::parse_auto_spec(cfg->compressor);
    trainer::TrainConfig plain = *cfg;
    plain.compressor = "identity";
    plain.compressor_rules.clear();
    const auto tensors = trainer::make_signature(plain, channels, height, width, classes).tensors;
    const experiments::AutoPlan plan = experiments::choose_compressors(tensors, spec, cfg->workers, cfg->placement.num_shards);
    // The user's rules (if any) come first: first match wins, so they override the choice.
    cfg->compressor_rules = cfg->compressor_rules.empty() ? plan.rules : cfg->compressor_rules + "\n" + plan.rules;
    cfg->compressor = "identity";
    return experiments::auto_plan_json(plan, spec);
  } catch (const quant::SpecError& e) {
    throw UsageError(std::string("--compressor auto: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--compressor ") + e.what());
  }
}

}  // namespace gradzip::cli
