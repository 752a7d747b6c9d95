// `gradzip launch`: start the M shards and N workers of one run as real processes (on
// loopback, or in network namespaces joined by shaped veth links with --cluster netem),
// wait for them, tear every child down on any failure (naming the one that failed), and
// merge their metrics into the run directory. Same options as `gradzip train`; INI
// section [launch]. `--cluster` defaults to local here.
#pragma once

#include "experiments/train/run.h"
