// /v1/jobs…: the durable job queue, for operators (admin keys only).
#include <boost/json.hpp>

#include "core/text.h"
#include "http/api.h"
#include "http/problem.h"
#include "jobs/queue.h"
#include "jobs/scheduler.h"

namespace caas::http {
namespace json = boost::json;

void AddJobRoutes(Api& api, Services s) {
  api.Add("GET", "/v1/jobs", Access::kAdmin, [s](Context& ctx) -> Response {
    PageParams page;
    if (auto problem = ReadPageParams(ctx.request, "job", &page, {"state", "type"})) {
      return std::move(*problem);
    }
    std::optional<jobs::JobState> state;
    if (const std::string* v = ctx.request.Query("state")) {
      state = jobs::ParseJobState(*v);
      if (!state) {
        return ProblemFromError(
            Error::Invalid("state", "must be one of queued, running, done, dead"));
      }
    }
    std::optional<std::string> type;
    if (const std::string* v = ctx.request.Query("type")) {
      if (v->empty() || v->size() > 64) {
        return ProblemFromError(Error::Invalid("type", "must be 1 to 64 characters"));
      }
      type = *v;
    }
    auto p = s.jobs->List(state, type, page.starting_after, page.limit);
    json::array data;
    for (const auto& j : p.items) data.push_back(jobs::JobToJson(j));
    json::object o{{"object", "list"}, {"has_more", p.has_more}};
    if (p.has_more && !p.items.empty()) o["next_starting_after"] = p.items.back().id;
    o["data"] = std::move(data);
    return JsonResponse(200, o);
  });

  api.Add("GET", "/v1/jobs/{id}", Access::kAdmin, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!IsValidId(id, "job")) return ProblemFromError(Error::Invalid("id", "must be a job id"));
    auto j = s.jobs->Get(id);
    if (!j) return ProblemFromError(j.error());
    return JsonResponse(200, jobs::JobToJson(*j));
  });

  api.Add("POST", "/v1/jobs/{id}/retry", Access::kAdmin, [s](Context& ctx) -> Response {
    const auto id = ctx.Param("id");
    if (!IsValidId(id, "job")) return ProblemFromError(Error::Invalid("id", "must be a job id"));
    auto j = s.jobs->Retry(id);
    if (!j) {
      if (j.error().code == ErrorCode::kFailedPrecondition) {
        return Problem(409, "job-not-retryable", "Job not retryable", j.error().message);
      }
      return ProblemFromError(j.error());
    }
    s.scheduler->Wake();
    return JsonResponse(200, jobs::JobToJson(*j));
  });
}

}  // namespace caas::http
