#include "storage/blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

Status Fail(const std::string& what) {
  return Error::Make(ErrorCode::kUnavailable, what + ": " + std::strerror(errno));
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Fail("open " + dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::Ok() : Fail("fsync " + dir);
}

}  // namespace

Status FileBlobStore::Put(std::string_view key, std::string_view bytes) {
  if (!ValidKey(key)) return Error::Invalid("key", "not a blob key: " + std::string(key));
  const std::filesystem::path path = std::filesystem::path(dir_) / std::string(key);
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return Error::Make(ErrorCode::kUnavailable, "mkdir " + path.parent_path().string());
  const std::string tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return Fail("open " + tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Fail("write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Fail("fsync " + tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Fail("rename " + tmp);
  return SyncDir(path.parent_path().string());
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
