// The CURVE key directory of a run (`gradzip keys --out DIR`, `--curve-keys DIR`).
//
// ZeroMQ's CURVE (RFC 26, CurveZMQ) encrypts every connection and authenticates both
// ends: the shards hold one server key pair, each worker its own client key pair, and a
// shard admits only the client public keys listed in authorized_keys (ZAP handler,
// comm/zmq_server.h). Layout, all keys Z85 text as zmq_curve_keypair writes them:
//
//   DIR/server.key       shard key pair: line 1 public, line 2 secret (mode 0600)   shard hosts
//   DIR/server.pub       the shards' public key, one line                          worker hosts
//   DIR/authorized_keys  the workers' public keys, one per line                   shard hosts
//   DIR/worker<R>.key    worker R's key pair: public, secret (mode 0600)           worker R's host
//
// Every shard of a run serves with the same server key pair. A host needs only its own
// files; secret keys never have to leave the host that uses them if DIR is split.
// No torch, no Boost.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradzip::experiments {

/// A key directory or key file that is missing, unreadable or malformed; the message
/// names the path and what `gradzip keys` would have written there.
class CurveKeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// `dir` as an absolute path; throws CurveKeyError when it is not a directory.
std::string curve_key_dir(const std::string& dir);

/// Writes a server key pair, server.pub, `workers` client key pairs and authorized_keys
/// into `dir` (created if missing). Refuses (CurveKeyError) to replace existing key files
/// unless `overwrite`. Returns the paths written, server first.
std::vector<std::string> write_curve_key_dir(const std::string& dir, std::uint32_t workers, bool overwrite);

/// What a shard process needs: its key pair file and the authorized client keys file.
struct ShardCurveFiles {
  std::string key_pair;
  std::string authorized_keys;
};
/// Checks that both files exist in `dir`; throws CurveKeyError naming the missing one.
ShardCurveFiles shard_curve_files(const std::string& dir);

/// What worker `rank` needs: the shards' public key and its own key pair file.
struct WorkerCurveKeys {
  std::string server_public_key;  ///< Z85, 40 characters
  std::string key_pair;           ///< path of worker<R>.key
};
/// Reads server.pub and checks worker<rank>.key exists; throws CurveKeyError.
WorkerCurveKeys worker_curve_keys(const std::string& dir, std::uint32_t rank);

}  // namespace gradzip::experiments
