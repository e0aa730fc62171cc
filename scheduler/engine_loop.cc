#include "scheduler/engine_loop.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/check.h"

namespace hybridserve::scheduler {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

bool Contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

TokenLogprobInfo ToInfo(engine::SampleResult r) {
  return {.token_id = r.token, .logprob = r.logprob, .rank = r.rank, .top = std::move(r.top)};
}

}  // namespace

EngineLoop::EngineLoop(engine::StepEngine* engine,
                       const engine::tokenizer::Tokenizer* tokenizer,
                       const EngineLoopOptions& options)
    : engine_(engine),
      tokenizer_(tokenizer),
      options_(options),
      blocks_(engine->memory_plan().num_blocks, engine->memory_plan().block_tokens),
      slots_(engine->memory_plan().num_state_slots),
      observer_(options.observer != nullptr ? options.observer : &null_observer_) {
  PublishLoad();
}

EngineLoop::~EngineLoop() { Stop(); }

absl::Status EngineLoop::Warmup() {
  HS_CHECK(!started_);
  const int64_t capacity = blocks_.has_kv()
                               ? blocks_.num_free() * blocks_.block_tokens()
                               : engine_->max_model_len();
  const int64_t n = std::min({options_.max_batched_tokens, engine_->max_model_len(),
                              capacity, engine_->limits().max_num_tokens});
  const int64_t seq = -1;
  if (!blocks_.Grow(seq, n)) return absl::InternalError("warm-up: no KV blocks");
  engine::StepPlan plan;
  plan.token_ids.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) plan.positions.push_back(static_cast<int32_t>(i));
  plan.query_start = {0, static_cast<int32_t>(n)};
  plan.context_len = {static_cast<int32_t>(n)};
  plan.block_table = blocks_.Table(seq);
  plan.block_table_width = std::max<int32_t>(1, static_cast<int32_t>(plan.block_table.size()));
  if (plan.block_table.empty()) plan.block_table = {0};
  plan.state_slot = {0};  // slot 0 is free before Start: zeroed here, zeroed again on use
  plan.state_is_fresh = {1};
  plan.logits_indices = {static_cast<int32_t>(n - 1)};
  absl::Status st = engine_->Step(plan, &step_out_);
  blocks_.Free(seq);
  PublishLoad();
  return st;
}

bool EngineLoop::RunOnce() {
  HS_CHECK(!started_);
  return Iterate();
}

void EngineLoop::Start() {
  HS_CHECK(!started_);
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

absl::Status EngineLoop::Submit(std::unique_ptr<Request> request) {
  // A request whose prompt plus max_new_tokens can never fit the cache.
  if (blocks_.has_kv()) {
    const int64_t len = static_cast<int64_t>(request->prompt_ids.size()) +
                        request->stop.max_new_tokens;
    const int64_t need = (len + blocks_.block_tokens() - 1) / blocks_.block_tokens();
    if (need > blocks_.num_blocks()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt (", request->prompt_ids.size(), " tokens) + max_new_tokens (",
          request->stop.max_new_tokens, ") needs ", need,
          " KV blocks; the whole cache has ", blocks_.num_blocks()));
    }
  }
  absl::MutexLock lock(&mu_);
  if (draining_ || stopping_) {
    return absl::UnavailableError("the server is draining; retry on another replica");
  }
  if (static_cast<int64_t>(inbox_.size()) + num_waiting_.load() >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the waiting queue is full (--max-queue ", options_.max_queue, "); retry later"));
  }
  inbox_.push_back(std::move(request));
  idle_ = false;
  return absl::OkStatus();
}

void EngineLoop::BeginDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool EngineLoop::WaitUntilIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(&idle_), deadline);
}

int EngineLoop::CancelAll(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!started_ || stopping_) return 0;
  ++pending_cancel_all_;
  cancel_all_status_ = std::move(status);
  // Wait for the loop to act on it; it counts what it ended.
  mu_.Await(absl::Condition(
      +[](int* pending) { return *pending == 0; }, &pending_cancel_all_));
  return cancel_all_ended_;
}

void EngineLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

LoopLoad EngineLoop::load() const {
  return {.free_kv_blocks = free_blocks_.load(),
          .total_kv_blocks = blocks_.num_blocks(),
          .free_state_slots = free_slots_.load(),
          .total_state_slots = slots_.num_slots(),
          .running = num_running_.load(),
          .waiting = num_waiting_.load()};
}

void EngineLoop::PublishLoad() {
  // Blocks promised to running sequences are not free for new ones.
  free_blocks_.store(blocks_.num_free());
  free_slots_.store(slots_.num_free());
  observer_->OnPools({.used_kv_blocks = blocks_.num_blocks() - blocks_.num_free(),
                      .free_kv_blocks = blocks_.num_free(),
                      .used_state_slots = slots_.num_slots() - slots_.num_free(),
                      .free_state_slots = slots_.num_free(),
                      .running = static_cast<int32_t>(running_.size()),
                      .waiting = static_cast<int32_t>(waiting_.size())});
  num_running_.store(static_cast<int32_t>(running_.size()));
  num_waiting_.store(static_cast<int32_t>(waiting_.size()));
  for (auto& [stream, event] : finals_) stream->PushFinal(std::move(event));
  finals_.clear();
}

void EngineLoop::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !inbox_.empty() || pending_cancel_all_ > 0 ||
               !running_.empty() || !waiting_.empty();
      };
      if (!has_work()) {
        idle_ = true;
        mu_.Await(absl::Condition(&has_work));
      }
      if (stopping_) break;
      if (pending_cancel_all_ > 0) {
        const absl::Status status = cancel_all_status_;
        for (auto& r : inbox_) {
          waiting_.push_back(std::make_unique<Sequence>(next_seq_id_++, std::move(r), *tokenizer_));
        }
        inbox_.clear();
        cancel_all_ended_ = EndAll(status);
        pending_cancel_all_ = 0;
        continue;
      }
    }
    Iterate();
  }
  // Stopping: end whatever is left.
  DrainInbox();
  EndAll(absl::UnavailableError("the server stopped"));
  absl::MutexLock lock(&mu_);
  idle_ = true;
}

void EngineLoop::DrainInbox() {
  std::vector<std::unique_ptr<Request>> inbox;
  {
    absl::MutexLock lock(&mu_);
    inbox.swap(inbox_);
  }
  for (auto& r : inbox) {
    waiting_.push_back(std::make_unique<Sequence>(next_seq_id_++, std::move(r), *tokenizer_));
  }
}

void EngineLoop::Finish(Sequence& seq, FinishReason reason, absl::Status status,
                        TokenEvent event, bool flush_text) {
  if (seq.finished) return;
  seq.finished = true;
  blocks_.Free(seq.id);
  if (seq.state_slot >= 0) {
    slots_.Release(seq.state_slot);
    seq.state_slot = -1;
  }
  // Text still held back by the detokenizer and the stop checker (not after a
  // stop string: nothing after it is returned).
  if (flush_text) {
    std::string tail;
    seq.detokenizer.Finish(&tail);
    StopChecker::Result r = seq.stop_checker.Feed(tail);
    event.text += r.emit;
    if (r.stopped) {
      reason = FinishReason::kStop;
    } else {
      event.text += seq.stop_checker.Flush();
    }
  }
  if (!seq.first_event_sent) {
    event.prompt_token_ids = seq.req->prompt_ids;
    event.prompt_logprobs = std::move(seq.prompt_logprobs);
  }
  event.finish = reason;
  event.status = std::move(status);
  const absl::Time now = absl::Now();
  event.usage.prompt_tokens = static_cast<int32_t>(seq.prompt_len());
  event.usage.completion_tokens = static_cast<int32_t>(seq.num_generated());
  event.usage.queue_seconds = Seconds(std::min(seq.first_scheduled, now) - seq.req->arrival);
  event.usage.first_token_seconds =
      seq.first_token == absl::InfiniteFuture() ? 0.0 : Seconds(seq.first_token - seq.req->arrival);
  event.usage.total_seconds = Seconds(now - seq.req->arrival);
  event.usage.device_seconds = seq.device_seconds;
  observer_->OnFinish(reason, event.usage);
  // Pushed by PublishLoad, once the load this finish changes is published:
  // a client that has seen its last event finds itself no longer counted.
  finals_.emplace_back(seq.req->stream, std::move(event));
}

int EngineLoop::EndAll(absl::Status status) {
  const int ended = static_cast<int>(running_.size() + waiting_.size());
  for (auto& s : running_) Finish(*s, FinishReason::kCancelled, status, {}, false);
  for (auto& s : waiting_) Finish(*s, FinishReason::kCancelled, status, {}, false);
  running_.clear();
  waiting_.clear();
  PublishLoad();
  return ended;
}

void EngineLoop::DropCancelled() {
  const absl::Time now = absl::Now();
  auto drop = [&](Sequence& s) {
    if (s.req->stream->cancelled()) {
      Finish(s, FinishReason::kCancelled, absl::CancelledError("cancelled by the client"), {}, false);
    } else if (now >= s.req->deadline) {
      Finish(s, FinishReason::kCancelled,
             absl::DeadlineExceededError(absl::StrCat(
                 "deadline exceeded after ", s.num_generated(), " generated tokens")),
             {}, false);
    }
    return s.finished;
  };
  std::erase_if(running_, [&](const auto& s) { return drop(*s); });
  std::erase_if(waiting_, [&](const auto& s) { return drop(*s); });
}

int64_t EngineLoop::ChunkLimit(const Sequence& seq, int64_t budget) const {
  int64_t n = std::min(seq.num_uncomputed(), budget);
  // Prompt logprobs are computed a bounded number of rows per step.
  if (seq.req->prompt_logprobs.has_value() && seq.num_computed < seq.prompt_len()) {
    n = std::min(n, options_.prompt_logprobs_chunk);
  }
  return n;
}

bool EngineLoop::Outranks(const Sequence& a, const Sequence& b) {
  // Lower priority value first; then the earlier admitted.
  if (a.req->priority != b.req->priority) return a.req->priority < b.req->priority;
  return a.admit_order < b.admit_order;
}

void EngineLoop::SortWaiting(absl::Time now) {
  // Effective priority: the request's, improved by one for every
  // options_.aging interval spent waiting since arrival, so none starves.
  const double aging_s = absl::ToDoubleSeconds(options_.aging);
  auto effective = [&](const Sequence& s) {
    if (aging_s <= 0) return static_cast<double>(s.req->priority);
    return s.req->priority - std::floor(Seconds(now - s.req->arrival) / aging_s);
  };
  std::stable_sort(waiting_.begin(), waiting_.end(), [&](const auto& a, const auto& b) {
    const double ea = effective(*a), eb = effective(*b);
    if (ea != eb) return ea < eb;
    return a->req->arrival < b->req->arrival;
  });
}

void EngineLoop::Preempt(Sequence& seq) {
  blocks_.Free(seq.id);
  if (seq.state_slot >= 0) {
    slots_.Release(seq.state_slot);
    seq.state_slot = -1;
  }
  // Recompute on resumption: every token (prompt and generated) is prefilled
  // again; the tokens, detokenizer and stop checker state are kept.
  seq.num_computed = 0;
  ++seq.num_preemptions;
  observer_->OnPreemption();
}

std::vector<EngineLoop::Scheduled> EngineLoop::PlanStep() {
  // Plan without touching the pools, then apply: preempt, admit, grow.
  std::vector<Scheduled> sched;
  std::vector<Sequence*> victims;
  int64_t budget = options_.max_batched_tokens;
  int64_t free_blocks = blocks_.num_free();
  auto preempted = [&](const Sequence* s) {
    return std::find(victims.begin(), victims.end(), s) != victims.end();
  };
  // The running sequence to give up first: lowest priority, latest admitted.
  auto pick_victim = [&]() -> Sequence* {
    Sequence* worst = nullptr;
    for (auto& r : running_) {
      if (preempted(r.get())) continue;
      if (worst == nullptr || Outranks(*worst, *r)) worst = r.get();
    }
    return worst;
  };
  // Decodes (one new token) before prefill chunks, so a long prompt never
  // delays the running sequences' next tokens; each group in admission order.
  order_.clear();
  for (auto& r : running_) {
    if (r->num_uncomputed() == 1) order_.push_back(r.get());
  }
  for (auto& r : running_) {
    if (r->num_uncomputed() != 1) order_.push_back(r.get());
  }
  for (Sequence* s : order_) {
    if (preempted(s)) continue;
    const int64_t n = ChunkLimit(*s, budget);
    if (n <= 0) continue;
    const int64_t need = blocks_.BlocksNeeded(s->id, s->num_computed + n);
    while (need > free_blocks) {
      Sequence* victim = pick_victim();
      victims.push_back(victim);
      free_blocks += static_cast<int64_t>(blocks_.Table(victim->id).size());
      // A victim scheduled earlier in this step gives back its budget and blocks.
      auto it = std::find_if(sched.begin(), sched.end(),
                             [&](const Scheduled& x) { return x.seq == victim; });
      if (it != sched.end()) {
        budget += it->n;
        free_blocks += it->blocks;
        sched.erase(it);
      }
      if (victim == s) break;
    }
    if (preempted(s)) continue;
    free_blocks -= need;
    sched.push_back({s, n, need});
    budget -= n;
  }
  for (Sequence* v : victims) Preempt(*v);
  if (!victims.empty()) {
    for (auto& r : running_) {
      if (preempted(r.get())) waiting_.push_back(std::move(r));
    }
    std::erase_if(running_, [](const auto& r) { return r == nullptr; });
  }

  // Admissions, best effective priority first, while the head fits: KV blocks
  // for its first chunk plus a watermark (so admitting does not immediately
  // force a preemption), a state slot, and room in the batch.
  const absl::Time now = absl::Now();
  if (!waiting_.empty()) SortWaiting(now);
  const int64_t watermark = blocks_.has_kv() ? (blocks_.num_blocks() + 99) / 100 : 0;
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int64_t>(running_.size()) < options_.max_num_seqs) {
    Sequence& s = *waiting_.front();
    if (s.num_preemptions > 0 && !victims.empty()) break;  // not back in the step it left
    const int64_t n = ChunkLimit(s, budget);
    const int64_t need = blocks_.BlocksNeeded(s.id, n);
    if (need + watermark > free_blocks && need > 0) break;
    if (slots_.has_slots() && slots_.num_free() == 0) break;
    if (slots_.has_slots()) s.state_slot = *slots_.Acquire();
    free_blocks -= need;
    if (s.first_scheduled == absl::InfiniteFuture()) {
      s.first_scheduled = now;
      observer_->OnFirstScheduled(s.prompt_len(), Seconds(now - s.req->arrival));
    }
    s.admit_order = next_admit_order_++;
    sched.push_back({&s, n, need});
    budget -= n;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  // Apply: every block planned above is free now.
  for (const Scheduled& x : sched) {
    HS_CHECK(blocks_.Grow(x.seq->id, x.seq->num_computed + x.n));
  }
  for (Scheduled& x : sched) x.table = &blocks_.Table(x.seq->id);
  return sched;
}

void EngineLoop::BuildPlan(const std::vector<Scheduled>& sched) {
  engine::StepPlan& plan = plan_;
  plan.token_ids.clear();
  plan.positions.clear();
  plan.query_start.clear();
  plan.context_len.clear();
  plan.block_table.clear();
  plan.state_slot.clear();
  plan.state_is_fresh.clear();
  plan.logits_indices.clear();
  int64_t width = 1;
  for (const Scheduled& x : sched) width = std::max<int64_t>(width, x.table->size());
  plan.query_start.push_back(0);
  plan.block_table_width = static_cast<int32_t>(width);
  rows_.assign(sched.size(), LogitsRows{});
  for (size_t i = 0; i < sched.size(); ++i) {
    Sequence& s = *sched[i].seq;
    const int64_t n = sched[i].n;
    const int32_t first_index = plan.num_tokens();
    const bool wants_prompt_logprobs = s.req->prompt_logprobs.has_value();
    for (int64_t j = 0; j < n; ++j) {
      const int64_t pos = s.num_computed + j;
      plan.token_ids.push_back(s.tokens[pos]);
      plan.positions.push_back(static_cast<int32_t>(pos));
      // Row `pos` predicts token pos + 1: a prompt logprob while that is a
      // prompt token.
      if (wants_prompt_logprobs && pos + 1 < s.prompt_len() && pos >= s.prompt_logprobs_next) {
        if (rows_[i].first_prompt_row < 0) {
          rows_[i].first_prompt_row = static_cast<int64_t>(plan.logits_indices.size());
          rows_[i].first_prompt_pos = pos;
        }
        ++rows_[i].num_prompt_rows;
        plan.logits_indices.push_back(first_index + static_cast<int32_t>(j));
      }
    }
    if (s.num_computed + n == static_cast<int64_t>(s.tokens.size())) {
      rows_[i].sample_row = static_cast<int64_t>(plan.logits_indices.size());
      plan.logits_indices.push_back(first_index + static_cast<int32_t>(n - 1));
    }
    plan.query_start.push_back(plan.num_tokens());
    plan.context_len.push_back(static_cast<int32_t>(s.num_computed + n));
    const std::vector<int32_t>& table = *sched[i].table;
    plan.block_table.insert(plan.block_table.end(), table.begin(), table.end());
    plan.block_table.resize(plan.block_table.size() + (width - table.size()), -1);
    plan.state_slot.push_back(std::max(s.state_slot, 0));
    plan.state_is_fresh.push_back(s.num_computed == 0);
  }
}

bool EngineLoop::Iterate() {
  DrainInbox();
  DropCancelled();
  std::vector<Scheduled> sched = PlanStep();
  if (sched.empty()) {
    PublishLoad();
    return false;
  }

  BuildPlan(sched);
  const engine::StepPlan& plan = plan_;

  // ---- run
  absl::Status st = engine_->Step(plan, &step_out_);
  if (!st.ok()) {
    for (const Scheduled& x : sched) {
      Finish(*x.seq, FinishReason::kError,
             absl::InternalError(absl::StrCat("engine step failed: ", st.message())), {}, false);
    }
    std::erase_if(running_, [](const auto& s) { return s->finished; });
    PublishLoad();
    return true;
  }

  // ---- sample, stop checks, emit
  const int64_t vocab = step_out_.vocab_size;
  const int64_t total = plan.num_tokens();
  // Reported before any event goes out, so a client that sees its last token
  // already finds this step in the metrics.
  StepStats stats{.num_tokens = total,
                  .num_seqs = static_cast<int64_t>(sched.size()),
                  .forward_seconds = step_out_.forward_seconds};
  for (const Scheduled& x : sched) {
    // A decode step computes a generated token (num_computed not yet advanced).
    if (x.seq->num_computed >= x.seq->prompt_len()) {
      ++stats.num_decode_tokens;
    } else {
      stats.num_prefill_tokens += x.n;
    }
  }
  observer_->OnStep(stats);

  const absl::Time now = absl::Now();
  for (size_t i = 0; i < sched.size(); ++i) {
    Sequence& s = *sched[i].seq;
    const LogitsRows& rows = rows_[i];
    s.num_computed += sched[i].n;
    s.device_seconds += step_out_.forward_seconds * sched[i].n / total;
    if (rows.num_prompt_rows > 0) {
      EmitPromptLogprobs(s, step_out_.logits.data() + rows.first_prompt_row * vocab,
                         rows.first_prompt_pos, rows.num_prompt_rows);
      s.prompt_logprobs_next = rows.first_prompt_pos + rows.num_prompt_rows;
    }
    if (rows.sample_row >= 0) {
      SampleAndEmit(s, step_out_.logits.data() + rows.sample_row * vocab, now);
    }
  }
  std::erase_if(running_, [](const auto& s) { return s->finished; });
  PublishLoad();
  if (options_.check_invariants) HS_CHECK(CheckInvariants().ok());
  return true;
}

absl::Status EngineLoop::CheckInvariants() const {
  auto broken = [](auto&&... parts) {
    return absl::InternalError(absl::StrCat("engine loop invariant broken: ", parts...));
  };
  if (!blocks_.CheckInvariants()) return broken("a KV block is lost or owned twice");
  int64_t held_blocks = 0, held_slots = 0;
  std::vector<uint8_t> slot_seen(slots_.num_slots(), 0);
  for (const auto& s : running_) {
    const int64_t table = static_cast<int64_t>(blocks_.Table(s->id).size());
    const int64_t want = blocks_.has_kv()
                             ? (s->num_computed + blocks_.block_tokens() - 1) / blocks_.block_tokens()
                             : 0;
    if (table != want) {
      return broken("sequence ", s->id, " holds ", table, " blocks for ", s->num_computed, " tokens");
    }
    held_blocks += table;
    if (slots_.has_slots()) {
      if (s->state_slot < 0 || s->state_slot >= slots_.num_slots() || slot_seen[s->state_slot]) {
        return broken("sequence ", s->id, " has slot ", s->state_slot);
      }
      slot_seen[s->state_slot] = 1;
      ++held_slots;
    }
  }
  for (const auto& s : waiting_) {
    if (!blocks_.Table(s->id).empty() || s->state_slot >= 0) {
      return broken("waiting sequence ", s->id, " holds blocks or a slot");
    }
  }
  if (held_blocks + blocks_.num_free() != blocks_.num_blocks()) {
    return broken(held_blocks, " held + ", blocks_.num_free(), " free != ", blocks_.num_blocks(), " blocks");
  }
  if (held_slots + slots_.num_free() != slots_.num_slots()) {
    return broken(held_slots, " held + ", slots_.num_free(), " free != ", slots_.num_slots(), " slots");
  }
  return absl::OkStatus();
}

void EngineLoop::EmitPromptLogprobs(Sequence& seq, const float* rows, int64_t first_pos,
                                    int64_t n) {
  const int64_t vocab = step_out_.vocab_size;
  for (engine::SampleResult& r :
       sampler_.PromptLogprobs(absl::MakeConstSpan(rows, n * vocab), vocab,
                               seq.req->prompt_ids, first_pos, *seq.req->prompt_logprobs)) {
    seq.prompt_logprobs.push_back(ToInfo(std::move(r)));
  }
}

void EngineLoop::SampleAndEmit(Sequence& seq, const float* logits_row, absl::Time now) {
  const StopCriteria& stop = seq.req->stop;
  // Before min_new_tokens, stop and end-of-sequence tokens are not drawn.
  banned_.clear();
  if (seq.num_generated() < stop.min_new_tokens) {
    banned_ = stop.stop_token_ids;
    if (!stop.ignore_eos) banned_.insert(banned_.end(), stop.eos_token_ids.begin(), stop.eos_token_ids.end());
  }
  engine::SampleInput in;
  in.logits = absl::MakeConstSpan(logits_row, step_out_.vocab_size);
  in.banned_ids = banned_;
  in.params = &seq.req->sampling;
  in.prompt_ids = seq.req->prompt_ids;
  in.output_ids = absl::MakeConstSpan(seq.tokens).subspan(seq.prompt_len());
  in.seed = *seq.req->sampling.seed;
  in.token_index = seq.num_generated();
  in.want_logprobs = seq.req->logprobs.has_value();
  engine::SampleResult r = sampler_.Sample(in);
  const int32_t token = r.token;
  seq.tokens.push_back(token);
  if (seq.first_token == absl::InfiniteFuture()) {
    seq.first_token = now;
    observer_->OnToken(true, Seconds(now - seq.req->arrival));
  } else {
    observer_->OnToken(false, Seconds(now - seq.last_token));
  }
  seq.last_token = now;

  TokenEvent event;
  event.token_ids = {token};
  if (seq.req->logprobs.has_value()) {
    event.logprobs.push_back(ToInfo(r));
  }
  FinishReason reason = FinishReason::kNone;
  if (Contains(stop.stop_token_ids, token)) {
    reason = FinishReason::kStop;
  } else if (!stop.ignore_eos && Contains(stop.eos_token_ids, token)) {
    reason = FinishReason::kEos;
  } else if (seq.num_generated() >= stop.max_new_tokens ||
             static_cast<int64_t>(seq.tokens.size()) >= engine_->max_model_len()) {
    reason = FinishReason::kLength;
  }
  // Ids the tokenizer has no token for (padded vocabulary rows) add no text.
  std::string piece;
  if (!seq.detokenizer.Step(token, &piece).ok()) piece.clear();
  const StopChecker::Result checked = seq.stop_checker.Feed(piece);
  event.text = checked.emit;
  if (checked.stopped) {
    Finish(seq, FinishReason::kStop, absl::OkStatus(), std::move(event), /*flush_text=*/false);
    return;
  }
  if (reason != FinishReason::kNone) {
    Finish(seq, reason, absl::OkStatus(), std::move(event), /*flush_text=*/true);
    return;
  }
  if (!seq.first_event_sent) {
    event.prompt_token_ids = seq.req->prompt_ids;
    event.prompt_logprobs = std::move(seq.prompt_logprobs);
  }
  if (!seq.req->stream->Push(std::move(event))) {
    // The client does not read its stream: cancel rather than block the loop.
    Finish(seq, FinishReason::kCancelled,
           absl::ResourceExhaustedError("the client did not read its stream; outbox full"), {},
           false);
    return;
  }
  seq.first_event_sent = true;
}

}  // namespace hybridserve::scheduler
