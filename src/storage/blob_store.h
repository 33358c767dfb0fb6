// The blob port: named byte strings (invoice PDFs), written whole and
// atomically. The default adapter keeps files under the data directory;
// another (S3, GridFS) can take its place behind this interface.
#pragma once

#include <string>
#include <string_view>

#include "core/durable_file.h"
#include "core/status.h"

namespace caas::storage {

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // Stores `bytes` under `key` (letters, digits, '_', '-', '.', '/'),
  // replacing what was there; all or nothing, durable on return.
  virtual Status Put(std::string_view key, std::string_view bytes) = 0;
  // kNotFound when absent.
  virtual Result<std::string> Get(std::string_view key) = 0;
};

// Files under `dir`, written by WriteFileDurably (core/durable_file.h):
// a temporary name, a flush, a rename, a flush, so a crash leaves the old
// blob or the new, never half; concurrent puts share their flushes.
class FileBlobStore final : public BlobStore {
 public:
  explicit FileBlobStore(std::string dir) : dir_(std::move(dir)) {}
  Status Put(std::string_view key, std::string_view bytes) override;
  Result<std::string> Get(std::string_view key) override;

 private:
  std::string dir_;
  FlushGroup flush_;
};

}  // namespace caas::storage
