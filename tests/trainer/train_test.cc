// End-to-end training through the public API (no torch here): simulated workers, the
// in-process transport, real codecs; Fashion-MNIST when its files are installed.
#include <gtest/gtest.h>

#include <filesystem>

#include "quant/registry.h"
#include "tests/trainer/tiny_config.h"
#include "trainer/errors.h"
#include "trainer/records.h"
#include "trainer/train.h"

namespace gz = gradzip::trainer;

namespace {

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

gz::TrainConfig fashion_config(const std::string& compressor) {
  gz::TrainConfig c;
  c.model = "cnn";
  c.base_width = 8;  // conv 8/16 channels: ~3x cheaper than the default, still > 80%
  c.dataset = "fashion-mnist";
  c.data_dir = kFashionDir;
  c.train_subset = 10000;
  c.test_subset = 5000;
  c.epochs = 2;
  c.batch_size = 50;
  c.workers = 2;
  c.optimizer.lr = 0.05;
  c.optimizer.momentum = 0.9;
  // Cosine decay to zero over the run (Loshchilov & Hutter 2017) after a short warm-up
  // (Goyal et al. 2017): the last steps average out the SGD noise.
  c.optimizer.schedule = gradzip::comm::LrSchedule::kCosine;
  c.optimizer.total_steps = 2 * (10000 / 2 / 50);
  c.optimizer.warmup_steps = 10;
  c.placement.num_shards = 2;
  c.placement.bucket_bytes = 256 << 10;
  c.placement.min_compress_numel = 1024;
  c.compressor = compressor;
  c.torch_threads = 2;
  c.seed = 7;
  return c;
}

}  // namespace

TEST(Train, SameSeedGivesIdenticalMetrics) {
  gz::TrainConfig c = gz::testing::tiny_mlp_config({32, 512, 128, 32, 2, "ef+qsgd:bits=2"});
  c.augment.horizontal_flip = true;
  c.loader_threads = 2;
  const gz::TrainResult a = gz::run_training(c);
  const gz::TrainResult b = gz::run_training(c);
  ASSERT_EQ(a.epochs.size(), 2u);
  for (std::size_t e = 0; e < a.epochs.size(); ++e) {
    EXPECT_EQ(a.epochs[e].train_loss, b.epochs[e].train_loss);
    EXPECT_EQ(a.epochs[e].test_loss, b.epochs[e].test_loss);
    EXPECT_EQ(a.epochs[e].test_accuracy, b.epochs[e].test_accuracy);
    EXPECT_EQ(a.epochs[e].bytes_up, b.epochs[e].bytes_up);
  }
  EXPECT_EQ(a.steps, 2u * (512 / 2 / 32));
  EXPECT_GT(a.bytes_up, 0u);
  // Test-time augmentation changes only the evaluation, never the training trajectory.
  c.tta = true;
  const gz::TrainResult t = gz::run_training(c);
  EXPECT_EQ(t.epochs.back().train_loss, a.epochs.back().train_loss);
  EXPECT_NE(t.epochs.back().test_loss, a.epochs.back().test_loss);
  EXPECT_GT(t.epochs.back().test_accuracy, 0.0);
  c.tta = false;
  // A different seed changes the run.
  c.seed = 2;
  EXPECT_NE(gz::run_training(c).epochs.back().train_loss, a.epochs.back().train_loss);
}

TEST(Train, PackedRecordsTrainLikeTheOriginalData) {
  gz::TrainConfig c;
  c.model = "logreg";
  c.dataset = "synthetic";
  c.synthetic.channels = 1;
  c.synthetic.height = c.synthetic.width = 6;
  c.synthetic.train_size = 256;
  c.synthetic.test_size = 64;
  c.epochs = 1;
  c.batch_size = 16;
  const gz::DataSplit data = gz::make_synthetic(c.synthetic);
  const std::string dir = (std::filesystem::temp_directory_path() / "gradzip_train_records_test").string();
  std::filesystem::remove_all(dir);
  gz::pack_records(data.train, dir, "train", 4096);
  gz::pack_records(data.test, dir, "test", 4096);
  const gz::TrainResult direct = gz::run_training(c);
  c.dataset = "records";
  c.data_dir = dir;
  const gz::TrainResult packed = gz::run_training(c);
  EXPECT_EQ(direct.epochs.back().train_loss, packed.epochs.back().train_loss);
  EXPECT_EQ(direct.epochs.back().test_accuracy, packed.epochs.back().test_accuracy);
  std::filesystem::remove_all(dir);
}

TEST(Train, BadSettingsAreTypedErrors) {
  gz::TrainConfig c;
  c.dataset = "synthetic";
  c.model = "nosuchnet";
  EXPECT_THROW(gz::run_training(c), gz::ConfigError);
  c.model = "mlp";
  c.batch_size = 100000;
  EXPECT_THROW(gz::run_training(c), gz::ConfigError);
  c.batch_size = 8;
  c.dataset = "fashion-mnist";
  c.data_dir = "/nonexistent";
  EXPECT_THROW(gz::run_training(c), gz::DataError);
  c.dataset = "synthetic";
  c.compressor = "qsgd:bits=99";
  EXPECT_THROW(gz::run_training(c), gradzip::quant::SpecError);
}

class FashionMnist : public ::testing::TestWithParam<std::string> {};

TEST_P(FashionMnist, SmallCnnReaches80PercentOn10kImages) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed at " << kFashionDir;
  }
  const gz::TrainConfig c = fashion_config(GetParam());
  const gz::TrainResult r = gz::run_training(c);
  for (const auto& e : r.epochs) {
    std::printf("[%s] epoch %d train_acc %.4f test_acc %.4f loss %.4f bytes_up %llu t %.1fs\n", GetParam().c_str(),
                e.epoch, e.train_accuracy, e.test_accuracy, e.test_loss,
                static_cast<unsigned long long>(e.bytes_up), e.seconds);
  }
  std::printf("%s", r.bottleneck_report().c_str());
  EXPECT_GE(r.final_test_accuracy, 0.80);
  EXPECT_EQ(r.steps, 2u * (10000 / 2 / 50));
  EXPECT_GT(r.device_fraction, 0.0);
  EXPECT_FALSE(r.bottleneck.empty());
}

// ef:scale=1: the unscaled EF this test has always run (with the max norm QSGD's actual
// variance on these gradients is far below its worst-case omega, and it converges here);
// plain "ef+qsgd" now scales by 1/(1+omega) (quant/memory/ef.cc), which is safe for every
// input but takes more than these 2 epochs to reach 80%.
INSTANTIATE_TEST_SUITE_P(Codecs, FashionMnist, ::testing::Values("identity", "ef:scale=1+qsgd:bits=4,norm=max"),
                         [](const auto& param_info) {
                           return param_info.index == 0 ? std::string("identity") : std::string("ef_qsgd4");
                         });
