// `gradzip ps`: one parameter-server shard process (ZeroMQ), serving the workers of a run.
//
// A shard must build the same model signature and bucket layout as its workers, so it
// takes the train options (model, data set, compressor, shards, placement, optimizer):
// `gradzip ps --config run.ini --rank S --bind tcp://*:PORT` is `gradzip train ... --role shard`.
// Its INI section is [ps] (plus [common]).
#pragma once

#include "experiments/train/run.h"
