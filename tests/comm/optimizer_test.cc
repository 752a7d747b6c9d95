// Server optimizer: PyTorch SGD semantics and learning-rate schedules.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/optimizer.h"

namespace gradzip::comm {
namespace {

TEST(Optimizer, MomentumNesterovAndWeightDecayMatchHandComputedSteps) {
  OptimizerOptions o;
  o.lr = 0.5;
  o.momentum = 0.9;
  o.weight_decay = 0.1;
  float p = 1.0f, buf = 0.0f;
  const float g = 2.0f;
  sgd_step(o, 0, &p, &g, &buf, 1);
  // d = 2 + 0.1*1 = 2.1; b = 2.1; p = 1 - 0.5*2.1
  EXPECT_FLOAT_EQ(buf, 2.1f);
  EXPECT_FLOAT_EQ(p, 1.0f - 0.5f * 2.1f);
  const float p1 = p;
  sgd_step(o, 1, &p, &g, &buf, 1);
  const float d2 = 2.0f + 0.1f * p1;
  EXPECT_FLOAT_EQ(buf, 0.9f * 2.1f + d2);
  EXPECT_FLOAT_EQ(p, p1 - 0.5f * (0.9f * 2.1f + d2));

  o.nesterov = true;
  o.weight_decay = 0;
  p = 0.0f;
  buf = 1.0f;
  sgd_step(o, 0, &p, &g, &buf, 1);
  // b = 0.9 + 2 = 2.9; d = 2 + 0.9*2.9
  EXPECT_FLOAT_EQ(p, -0.5f * (2.0f + 0.9f * 2.9f));
}

TEST(Optimizer, Schedules) {
  OptimizerOptions o;
  o.lr = 1.0;
  o.schedule = LrSchedule::kStep;
  o.step_size = 10;
  o.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(o, 9), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 10), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(o, 25), 0.25);
  o.schedule = LrSchedule::kCosine;
  o.total_steps = 100;
  o.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 1.0);
  EXPECT_NEAR(learning_rate(o, 50), 0.55, 1e-12);
  EXPECT_NEAR(learning_rate(o, 100), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(o, 1000), 0.1, 1e-12);
  o.schedule = LrSchedule::kConstant;
  o.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(o, 3), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 4), 1.0);
  EXPECT_EQ(parse_lr_schedule("cosine"), LrSchedule::kCosine);
  EXPECT_THROW(parse_lr_schedule("exp"), std::invalid_argument);
}

}  // namespace
}  // namespace gradzip::comm
