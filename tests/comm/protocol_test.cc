// Protocol envelope helpers: reply types, and envelopes that survive a write/read trip.
#include <gtest/gtest.h>

#include "comm/protocol.h"

namespace gradzip::comm {
namespace {

constexpr MsgType kRequests[] = {MsgType::kHello,     MsgType::kInit,      MsgType::kPush,    MsgType::kPull,
                                 MsgType::kBarrier,   MsgType::kHeartbeat, MsgType::kShutdown, MsgType::kReduce};

TEST(Protocol, ReplyTypeIsTheRequestWithTheReplyBit) {
  for (const MsgType t : kRequests) {
    const MsgType r = reply_type(t);
    EXPECT_EQ(static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(t) | kReplyBit) << static_cast<int>(t);
    EXPECT_NE(r, t);
    EXPECT_FALSE(is_reply_type(t)) << static_cast<int>(t);
    EXPECT_TRUE(is_reply_type(r)) << static_cast<int>(t);
  }
  EXPECT_TRUE(is_reply_type(MsgType::kError));
}

TEST(Protocol, ReplyEnvelopesRoundTrip) {
  for (const MsgType t : kRequests) {
    Envelope e;
    e.type = reply_type(t);
    e.flags = kFlagDelta | kFlagStale;
    e.worker = 3;
    e.bucket = 70001;
    e.step = 0x0102030405060708ull;
    e.seq = 99;
    e.aux = kLatestStep;
    std::uint8_t bytes[kEnvelopeBytes];
    write_envelope(e, bytes);
    Envelope back;
    std::string why;
    ASSERT_TRUE(read_envelope(bytes, sizeof(bytes), &back, &why)) << why;
    EXPECT_EQ(back.type, e.type);
    EXPECT_EQ(back.flags, e.flags);
    EXPECT_EQ(back.worker, e.worker);
    EXPECT_EQ(back.bucket, e.bucket);
    EXPECT_EQ(back.step, e.step);
    EXPECT_EQ(back.seq, e.seq);
    EXPECT_EQ(back.aux, e.aux);
  }
}

}  // namespace
}  // namespace gradzip::comm
