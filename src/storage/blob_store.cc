#include "storage/blob_store.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace caas::storage {
namespace {

bool ValidKey(std::string_view key) {
  if (key.empty() || key.size() > 200 || key.front() == '/' || key.find("..") != key.npos) {
    return false;
  }
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Status FileBlobStore::Put(std::string_view key, std::string_view bytes) {
  if (!ValidKey(key)) return Error::Invalid("key", "not a blob key: " + std::string(key));
  return WriteFileDurably(flush_, (std::filesystem::path(dir_) / std::string(key)).string(), bytes);
}

Result<std::string> FileBlobStore::Get(std::string_view key) {
  if (!ValidKey(key)) return Error::Invalid("key", "not a blob key: " + std::string(key));
  const std::string path = (std::filesystem::path(dir_) / std::string(key)).string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::NotFound("no blob " + std::string(key));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace caas::storage
