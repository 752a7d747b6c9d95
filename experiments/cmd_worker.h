// `gradzip worker`: one training worker process that pushes compressed gradients to the
// parameter-server shards and pulls parameters back. Its options (WorkerOptions,
// bind_worker_options) are in experiments/train/options.h: the training options are the
// same as `gradzip train`'s and `gradzip ps`'s, so one config file serves all three.
#pragma once

#include "experiments/train/options.h"
