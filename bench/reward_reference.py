"""The paper's reward code, re-implemented faithfully, for bench/reward_speed.py to compare against.

From Liuziyu77/Visual-RFT, src/virft/src/open_r1/grpo.py: ``accuracy_reward_iou``,
``accuracy_reward_confidence`` and ``format_reward`` with the helpers they call. Kept as close to the
original as possible, quirks included; only the debug log writing is left out. The original first tries
symbolic verification with ``math_verify`` (``use_math_verify=True``), when it is importable; it is not a
dependency of this project.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime

try:  # the original first tries symbolic verification with math_verify
    from math_verify import parse as mv_parse
    from math_verify import verify as mv_verify
except ImportError:
    mv_parse = mv_verify = None


def math_verify_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("math-verify")
    except Exception:
        return None


def _orig_extract_bbox(response):
    start_tag = "<answer>"
    end_tag = "</answer>"
    input_str = response
    if start_tag in input_str:
        start_idx = input_str.find(start_tag) + len(start_tag)
        end_idx = input_str.find(end_tag)
        if end_idx == -1:
            end_idx = len(input_str)
        content_str = input_str[start_idx:end_idx]
        if not content_str.endswith("]"):
            content_str = content_str.rsplit("},", 1)[0] + "}]"
        content_str_corrected = content_str.replace("'", '"')
        try:
            bbox_list = json.loads(content_str_corrected)
        except json.JSONDecodeError:
            bbox_list = None
    else:
        bbox_list = None
    return bbox_list


def _orig_calculate_iou(bbox1, bbox2):
    x1, y1, x2, y2 = bbox1
    x1_2, y1_2, x2_2, y2_2 = bbox2
    xi1 = max(x1, x1_2)
    yi1 = max(y1, y1_2)
    xi2 = min(x2, x2_2)
    yi2 = min(y2, y2_2)
    if xi2 <= xi1 or yi2 <= yi1:
        return 0.0
    intersection_area = (xi2 - xi1) * (yi2 - yi1)
    area1 = (x2 - x1) * (y2 - y1)
    area2 = (x2_2 - x1_2) * (y2_2 - y1_2)
    union_area = area1 + area2 - intersection_area
    return intersection_area / union_area


def _orig_sort_and_calculate_iou(list1, list2, iou_threshold=0.5):
    list2_sorted = sorted(list2, key=lambda x: x["Confidence"], reverse=True)
    iou_results = []
    matched_list1_indices = set()
    for bbox2 in list2_sorted:
        matched_bbox1 = -1
        best_iou = 0
        for i, bbox1 in enumerate(list1):
            if i not in matched_list1_indices:
                iou = _orig_calculate_iou(bbox1["Position"], bbox2["Position"])
                if iou > best_iou:
                    best_iou = iou
                    matched_bbox1 = i
        if best_iou > iou_threshold:
            iou_results.append((best_iou, bbox2["Confidence"]))
            matched_list1_indices.add(matched_bbox1)
        else:
            iou_results.append((0, bbox2["Confidence"]))
    return iou_results


def _orig_remove_duplicates(bbox_list):
    seen = set()
    unique_bboxes = []
    for bbox in bbox_list:
        position_tuple = tuple(bbox["Position"])
        if position_tuple not in seen:
            seen.add(position_tuple)
            unique_bboxes.append(bbox)
    return unique_bboxes


def _orig_compute_reward_iou_v2(iou_results, len_gt):
    iou_reward = 0.0
    for temp_iou, _temp_confidence in iou_results:
        iou_reward += temp_iou
    if len_gt >= len(iou_results):
        iou_reward = iou_reward / len_gt
    else:
        iou_reward = iou_reward / len(iou_results)
    return iou_reward


def _orig_compute_reward_confidence(iou_results):
    confidence_reward = 0.0
    for temp_iou, temp_confidence in iou_results:
        if temp_iou == 0:
            temp_confidence_reward = (1 - temp_iou) * (1 - temp_confidence)
        else:
            temp_confidence_reward = temp_confidence
        confidence_reward += temp_confidence_reward
    return confidence_reward / len(iou_results)


def _orig_accuracy(completions, solution, which, use_math_verify):
    contents = [completion[0]["content"] for completion in completions]
    rewards_out = []
    datetime.now().strftime("%d-%H-%M-%S-%f")  # the original stamps every call for its debug log
    for content, sol in zip(contents, solution):
        reward = 0.0
        if use_math_verify:
            try:
                answer = mv_parse(content)
                if float(mv_verify(answer, mv_parse(sol))) > 0:
                    reward = 1.0
            except Exception:
                pass
        if reward == 0.0:
            try:
                ground_truth = sol.strip()
                content_match = re.search(r"<answer>(.*?)</answer>", content)
                student_answer = content_match.group(1).strip() if content_match else content.strip()
                student_answer = "<answer>" + student_answer + "</answer>"
                student_answer = student_answer.replace("[[", "[")
                student_answer = student_answer.replace("]]", "]")
                student_answer = student_answer.replace("\n", "")
                ground_truth_bbox = _orig_extract_bbox(ground_truth)
                student_answer_bbox = _orig_extract_bbox(student_answer)
                if student_answer_bbox is None or type(student_answer_bbox[0]) is not dict:
                    reward = 0.0
                else:
                    student_answer_bbox = _orig_remove_duplicates(student_answer_bbox)
                    iou_results = _orig_sort_and_calculate_iou(ground_truth_bbox, student_answer_bbox)
                    if which == "iou":
                        reward = _orig_compute_reward_iou_v2(iou_results, len(ground_truth_bbox))
                        if reward > 1:
                            reward = 1.0
                    else:
                        reward = _orig_compute_reward_confidence(iou_results)
                        if reward > 1:
                            reward = 1.0
                        if reward < 0:
                            reward = 0.0
            except Exception:
                pass
        rewards_out.append(reward)
        os.getenv("DEBUG_MODE")  # the original checks this for every completion
    return rewards_out


def original_accuracy_reward_iou(completions, solution, use_math_verify=False, **kwargs):
    return _orig_accuracy(completions, solution, "iou", use_math_verify)


def original_accuracy_reward_confidence(completions, solution, use_math_verify=False, **kwargs):
    return _orig_accuracy(completions, solution, "confidence", use_math_verify)


def original_format_reward(completions, **kwargs):
    pattern = r"<think>.*?</think>\s*<answer>.*?</answer>"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [re.fullmatch(pattern, content, re.DOTALL) for content in completion_contents]
    return [1.0 if match else 0.0 for match in matches]
