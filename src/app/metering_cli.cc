#include "app/metering_cli.h"

#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <vector>

#include "app/client.h"
#include "metering/usage_event.h"

namespace caas::app {
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxBatchBytes = 8 << 20;  // below the server's 10 MiB
constexpr size_t kMaxShownProblems = 20;

struct Totals {
  uint64_t lines = 0, accepted = 0, duplicate = 0, conflict = 0, rejected = 0;
  uint64_t bytes_read = 0;
};

std::string Thousands(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

class Progress {
 public:
  Progress(bool enabled, uint64_t total_bytes)
      : enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1), total_(total_bytes) {}

  void Update(const Totals& t, bool final) {
    if (!enabled_) return;
    const auto now = SteadyClock::now();
    if (!final && now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::seconds(5))) {
      return;
    }
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(t.lines) / secs : 0;
    std::string bar;
    if (total_ > 0) {
      const double frac =
          std::min(1.0, static_cast<double>(t.bytes_read) / static_cast<double>(total_));
      const int width = 24, filled = static_cast<int>(frac * width);
      bar = "[" + std::string(static_cast<size_t>(filled), '=') +
            std::string(static_cast<size_t>(width - filled), ' ') + "] " +
            std::to_string(static_cast<int>(frac * 100)) + "% ";
    }
    std::fprintf(
        stderr, "%s%s%s events, %s events/s, accepted %s, duplicate %s, conflict %s, rejected %s%s",
        tty_ ? "\r\033[K" : "", bar.c_str(), Thousands(t.lines).c_str(),
        Thousands(static_cast<uint64_t>(rate)).c_str(), Thousands(t.accepted).c_str(),
        Thousands(t.duplicate).c_str(), Thousands(t.conflict).c_str(),
        Thousands(t.rejected).c_str(), tty_ && !final ? "" : "\n");
    std::fflush(stderr);
  }
  double Seconds() const {
    return std::chrono::duration<double>(SteadyClock::now() - start_).count();
  }

 private:
  bool enabled_, tty_;
  uint64_t total_;
  SteadyClock::time_point start_ = SteadyClock::now();
  SteadyClock::time_point last_{};
};

}  // namespace

int RunIngest(const IngestOptions& o) {
  auto client = ApiClient::Create(o.url, o.key);
  if (!client) {
    std::cerr << "caas-billing: " << client.error().field << " " << client.error().message << "\n";
    return 2;
  }
  std::ifstream file;
  std::istream* in = &std::cin;
  uint64_t total_bytes = 0;
  if (o.file != "-") {
    file.open(o.file, std::ios::binary | std::ios::ate);
    if (!file) {
      std::cerr << "caas-billing: cannot read " << o.file << "\n";
      return 2;
    }
    total_bytes = static_cast<uint64_t>(file.tellg());
    file.seekg(0);
    in = &file;
  }
  const size_t batch_size = std::clamp<size_t>(o.batch, 1, metering::kMaxEventsPerRequest);
  Totals totals;
  Progress progress(o.progress, total_bytes);
  std::vector<std::pair<uint64_t, std::string>> problems;  // line number, text
  std::string body, line;
  std::vector<uint64_t> line_numbers;
  uint64_t line_no = 0;

  auto send = [&]() -> bool {
    if (line_numbers.empty()) return true;
    ClientResponse r;
    try {
      r = (*client)->Send("POST", "/v1/events", "application/x-ndjson", body);
    } catch (const std::exception& e) {
      std::cerr << "\ncaas-billing: " << e.what() << " (events up to line "
                << line_numbers.front() - 1 << " were answered; re-running is safe: "
                << "events already accepted count as duplicates)\n";
      return false;
    }
    if (r.status != 200) {
      std::cerr << "\ncaas-billing: the server answered " << r.status << ": " << r.body << "\n";
      return false;
    }
    json::object answer = json::parse(r.body).as_object();
    totals.accepted += answer.at("accepted").to_number<uint64_t>();
    totals.duplicate += answer.at("duplicate").to_number<uint64_t>();
    totals.conflict += answer.at("conflict").to_number<uint64_t>();
    totals.rejected += answer.at("rejected").to_number<uint64_t>();
    for (const auto& err : answer.at("errors").as_array()) {
      const auto& e = err.as_object();
      const auto index = e.at("index").to_number<size_t>();
      if (problems.size() < kMaxShownProblems && index < line_numbers.size()) {
        std::string field(e.at("field").as_string());
        problems.emplace_back(line_numbers[index], std::string(e.at("outcome").as_string()) + ": " +
                                                       (field.empty() ? "" : field + " ") +
                                                       std::string(e.at("reason").as_string()));
      }
    }
    totals.lines += line_numbers.size();
    body.clear();
    line_numbers.clear();
    progress.Update(totals, false);
    return true;
  };

  while (std::getline(*in, line)) {
    ++line_no;
    totals.bytes_read += line.size() + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (body.size() + line.size() + 1 > kMaxBatchBytes) {
      if (!send()) return 2;
    }
    body += line;
    body += '\n';
    line_numbers.push_back(line_no);
    if (line_numbers.size() >= batch_size && !send()) return 2;
  }
  if (!send()) return 2;
  progress.Update(totals, true);
  const double secs = progress.Seconds();
  std::cout << "ingested " << Thousands(totals.lines) << " events in " << secs << " s ("
            << Thousands(static_cast<uint64_t>(secs > 0 ? totals.lines / secs : 0))
            << " events/s): accepted " << Thousands(totals.accepted) << ", duplicate "
            << Thousands(totals.duplicate) << ", conflict " << Thousands(totals.conflict)
            << ", rejected " << Thousands(totals.rejected) << "\n";
  for (const auto& [n, text] : problems) std::cout << "  line " << n << ": " << text << "\n";
  if (totals.conflict + totals.rejected > problems.size()) {
    std::cout << "  (" << Thousands(totals.conflict + totals.rejected - problems.size())
              << " more not shown)\n";
  }
  return totals.conflict + totals.rejected == 0 ? 0 : 1;
}

int RunUsage(const std::string& url, const std::string& key, const std::string& tenant,
             bool as_json) {
  auto client = ApiClient::Create(url, key);
  if (!client) {
    std::cerr << "caas-billing: " << client.error().field << " " << client.error().message << "\n";
    return 2;
  }
  ClientResponse r;
  try {
    r = (*client)->Send("GET", "/v1/tenants/" + tenant + "/usage", "", "");
  } catch (const std::exception& e) {
    std::cerr << "caas-billing: " << e.what() << "\n";
    return 2;
  }
  if (r.status != 200) {
    std::cerr << "caas-billing: the server answered " << r.status << ": " << r.body << "\n";
    return 2;
  }
  if (as_json) {
    std::cout << r.body << "\n";
    return 0;
  }
  json::object u = json::parse(r.body).as_object();
  const auto& period = u.at("period").as_object();
  std::cout << "tenant " << u.at("tenant").as_string().c_str() << "  plan "
            << u.at("plan").as_string().c_str() << "  period "
            << period.at("start").as_string().c_str() << " .. "
            << period.at("end").as_string().c_str() << "  (as of "
            << u.at("as_of").as_string().c_str() << ")\n";
  auto cell = [](const json::value& v) {
    if (v.is_null()) return std::string("-");
    if (v.is_string()) return std::string(v.as_string());
    return json::serialize(v);
  };
  std::printf("%-10s %16s %12s %12s %16s  %s\n", "metric", "used", "included", "limit", "overage",
              "unit");
  for (const char* m : {"messages", "api_calls", "mau", "storage"}) {
    const auto& x = u.at("metrics").as_object().at(m).as_object();
    std::printf("%-10s %16s %12s %12s %16s  %s\n", m, cell(x.at("used")).c_str(),
                cell(x.at("included")).c_str(), cell(x.at("limit")).c_str(),
                cell(x.at("overage")).c_str(), cell(x.at("unit")).c_str());
  }
  return 0;
}

}  // namespace caas::app
