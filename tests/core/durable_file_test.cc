#include "core/durable_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace caas {
namespace {

namespace fs = std::filesystem;

fs::path TempDir(const char* name) {
  fs::path d = fs::temp_directory_path() /
               (std::string("caas-durable-") + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writers at once share flushes; each file is whole under its name, and no
// temporary file is left.
TEST(DurableFile, ConcurrentWritersShareFlushesAndEveryFileIsWhole) {
  const fs::path dir = TempDir("concurrent");
  FlushGroup group;
  constexpr int kThreads = 8, kEach = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string name = "sub/f" + std::to_string(t) + "-" + std::to_string(i);
        const std::string bytes(1000 + 37 * i, static_cast<char>('a' + t));
        EXPECT_TRUE(WriteFileDurably(group, (dir / name).string(), bytes).ok()) << name;
      }
    });
  }
  for (auto& th : threads) th.join();
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
    const std::string name = e.path().filename().string();  // f<t>-<i>
    const int t = std::stoi(name.substr(1, name.find('-') - 1));
    const int i = std::stoi(name.substr(name.find('-') + 1));
    EXPECT_EQ(Read(e.path()), std::string(1000 + 37 * i, static_cast<char>('a' + t)));
    ++files;
  }
  EXPECT_EQ(files, kThreads * kEach);
  // One directory flush per file if nobody shared; sharing makes fewer.
  EXPECT_LT(group.flushes(), static_cast<uint64_t>(kThreads * kEach));
  std::printf("%d files, %llu flushes\n", files, static_cast<unsigned long long>(group.flushes()));
  fs::remove_all(dir);
}

// Rewriting a name replaces the whole file.
TEST(DurableFile, ARewriteReplacesTheFile) {
  const fs::path dir = TempDir("rewrite");
  FlushGroup group;
  ASSERT_TRUE(WriteFileDurably(group, (dir / "x").string(), "a long first version").ok());
  ASSERT_TRUE(WriteFileDurably(group, (dir / "x").string(), "short").ok());
  EXPECT_EQ(Read(dir / "x"), "short");
  fs::remove_all(dir);
}

// A write that cannot happen says which step failed and leaves nothing.
TEST(DurableFile, AFailedWriteNamesTheStepAndLeavesNoTemporaryFile) {
  const fs::path dir = TempDir("fail");
  FlushGroup group;
  { std::ofstream(dir / "plain") << "a file, not a directory"; }
  Status s = WriteFileDurably(group, (dir / "plain" / "x").string(), "bytes");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message.find("plain"), std::string::npos) << s.error().message;
  // A flush of a directory that does not exist fails.
  Status f = group.Flush((dir / "nowhere").string());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("nowhere"), std::string::npos) << f.error().message;
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.path().filename() != "plain";
  EXPECT_EQ(entries, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace caas
