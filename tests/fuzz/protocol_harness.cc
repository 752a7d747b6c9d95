// Fuzz harness of the parameter-server protocol parsers (comm/protocol.h): the 40-byte
// envelope of every request and reply, and the signature JSON of a hello. Refusals come
// with a reason; an accepted envelope writes back to the same 40 bytes; an accepted
// signature survives signature_to_json -> signature_from_json unchanged.
#include <cstring>
#include <string>

#include "comm/protocol.h"
#include "tests/fuzz/harness.h"

namespace gradzip::fuzz {
namespace {

void check_envelope(const std::uint8_t* data, std::size_t size) {
  comm::Envelope e;
  std::string why;
  if (!comm::read_envelope(data, size, &e, &why)) {
    GRADZIP_FUZZ_REQUIRE(!why.empty(), "read_envelope refused without a reason");
    return;
  }
  GRADZIP_FUZZ_REQUIRE(size == comm::kEnvelopeBytes, "read_envelope accepted " + std::to_string(size) + " bytes");
  std::uint8_t back[comm::kEnvelopeBytes];
  comm::write_envelope(e, back);
  GRADZIP_FUZZ_REQUIRE(std::memcmp(back, data, comm::kEnvelopeBytes) == 0, "an accepted envelope does not write back to its bytes");
}

void check_signature(const std::uint8_t* text, std::size_t size) {
  comm::ModelSignature s;
  std::string why;
  if (!comm::signature_from_json(text, size, &s, &why)) {
    GRADZIP_FUZZ_REQUIRE(!why.empty(), "signature_from_json refused without a reason");
    return;
  }
  const std::string json = comm::signature_to_json(s);
  comm::ModelSignature again;
  GRADZIP_FUZZ_REQUIRE(comm::signature_from_json(reinterpret_cast<const std::uint8_t*>(json.data()), json.size(), &again, &why),
          "signature_from_json refuses what signature_to_json wrote: " + why);
  GRADZIP_FUZZ_REQUIRE(s.diff(again).empty(), "signature changed in a JSON round trip: " + s.diff(again));
  GRADZIP_FUZZ_REQUIRE(comm::signature_to_json(again) == json, "signature JSON is not stable under a round trip");
}

}  // namespace

void protocol(const std::uint8_t* data, std::size_t size) {
  check_envelope(data, size);
  if (size >= comm::kEnvelopeBytes) {
    // A hello as the shard receives it: envelope frame, then the signature frame.
    check_envelope(data, comm::kEnvelopeBytes);
    check_signature(data + comm::kEnvelopeBytes, size - comm::kEnvelopeBytes);
  } else {
    check_signature(data, size);
  }
}

}  // namespace gradzip::fuzz
