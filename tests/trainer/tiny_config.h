// The run_training set-up the trainer tests share: a small MLP on synthetic 1x8x8
// images, two epochs, one torch thread per worker; a run takes seconds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "trainer/train.h"

namespace gradzip::trainer::testing {

/// Shape of a tiny run: model width, images (train/test), batch, workers and compressor.
struct TinyRun {
  int width = 24;
  std::size_t train_size = 384;
  std::size_t test_size = 64;
  std::size_t batch = 16;
  std::uint32_t workers = 1;
  std::string compressor = "ef+qsgd:bits=4";
};

/// TrainConfig of an "mlp" of base width r.width on synthetic 1x8x8 images, 2 epochs,
/// lr 0.05, everything else at its default.
inline TrainConfig tiny_mlp_config(const TinyRun& r) {
  TrainConfig c;
  c.model = "mlp";
  c.base_width = r.width;
  c.dataset = "synthetic";
  c.synthetic.channels = 1;
  c.synthetic.height = c.synthetic.width = 8;
  c.synthetic.train_size = r.train_size;
  c.synthetic.test_size = r.test_size;
  c.epochs = 2;
  c.batch_size = r.batch;
  c.workers = r.workers;
  c.compressor = r.compressor;
  c.optimizer.lr = 0.05;
  return c;
}

}  // namespace gradzip::trainer::testing
