package dev.mtnet.decoder;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * mtnet's reference decoder for apps: the outputs of an exported .tflite (raw, or exported with --nms) to boxes,
 * labels, scores, keypoints and a class mask in original-image pixels. It mirrors mtnet.decode step by step in
 * float32 (same thresholds, candidate order, class-aware NMS, letterbox mapping, bilinear upsampling), so it keeps
 * exactly what mtnet's Python predictor keeps; tests/test_app_tflite.py checks that on real images.
 *
 * <p>Inputs are the interpreter's float outputs by name, in the file's own layout: the permutations to mtnet's
 * documented axes, the labels and the input normalisation come from the model's metadata ({@link ModelInfo}).
 * Integer outputs (num_detections; seg with --seg-output argmax) are passed as float tensors.
 */
public final class Decoder {
    /** Thresholds, as in mtnet.decode (the defaults of mtnet's Predictor). */
    public static final class Options {
        public float conf = 0.25f;
        public float iou = 0.5f;
        public int maxDet = 100;
        public int maxCandidates = 1000;
        /** Keep every (anchor, class) above conf (mAP-style) instead of the best class per anchor. */
        public boolean multiLabel = false;
        /** A skeleton is the score-weighted mean over the anchors overlapping its box by more than this IoU
         *  (mtnet.decode.KEYPOINT_VOTE_IOU, vote_keypoints). */
        public float keypointVoteIou = 0.7f;
    }

    /** Everything one image decodes to. */
    public static final class Result {
        public final List<Detection> detections;
        /** Class label per original-image pixel (row-major), or null without segmentation. */
        public final byte[] mask;
        public final int maskWidth, maskHeight;

        Result(List<Detection> detections, byte[] mask, int maskWidth, int maskHeight) {
            this.detections = detections;
            this.mask = mask;
            this.maskWidth = maskWidth;
            this.maskHeight = maskHeight;
        }
    }

    private final ModelInfo info;

    public Decoder(ModelInfo info) {
        this.info = info;
    }

    public ModelInfo info() {
        return info;
    }

    /** Letterbox scale for an image: the longer side becomes the model's input size. */
    public double letterboxScale(int width, int height) {
        return (double) info.imgsz / Math.max(width, height);
    }

    /**
     * The input tensor (NHWC float32, imgsz x imgsz x 3) from a letterboxed ARGB image (Bitmap.getPixels order):
     * the image resized by {@link #letterboxScale} and padded bottom/right with grey (114) to imgsz x imgsz.
     */
    public float[] input(int[] argb) {
        int n = info.imgsz * info.imgsz;
        if (argb.length != n) throw new IllegalArgumentException("expected " + n + " letterboxed pixels, got " + argb.length);
        float[] x = new float[n * 3];
        for (int p = 0; p < n; p++) {
            int c = argb[p];
            int[] rgb = {(c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff};
            for (int k = 0; k < 3; k++) {
                float unit = (float) rgb[k] / 255f;
                x[p * 3 + k] = info.normalizedInGraph ? unit : (unit - info.mean[k]) / info.std[k];
            }
        }
        return x;
    }

    /** Decodes one image's outputs; {@code scale} from {@link #letterboxScale}, size of the original image. */
    public Result decode(Map<String, Tensor> outputs, double scale, int width, int height, Options opt) {
        List<Detection> dets = new ArrayList<>();
        if (outputs.containsKey("detections")) {
            dets = decodeNms(documented(outputs, "detections"), documented(outputs, "num_detections"),
                    outputs.containsKey("keypoints") ? documented(outputs, "keypoints") : null, scale, opt);
        } else if (outputs.containsKey("boxes")) {
            dets = decodeRaw(documented(outputs, "boxes"), documented(outputs, "scores"),
                    outputs.containsKey("keypoints") ? documented(outputs, "keypoints") : null, scale, opt);
        }
        byte[] mask = null;
        if (outputs.containsKey("seg")) mask = segmentation(documented(outputs, "seg"), scale, width, height);
        return new Result(dets, mask, mask == null ? 0 : width, mask == null ? 0 : height);
    }

    private Tensor documented(Map<String, Tensor> outputs, String name) {
        Tensor t = outputs.get(name);
        int[] perm = info.toDocumented.get(name);
        return perm == null ? t : t.permute(perm);
    }

    // ---- detections without NMS in the graph: threshold, class-aware NMS (mtnet.decode.decode_detections)

    private List<Detection> decodeRaw(Tensor boxes, Tensor scores, Tensor keypoints, double scale, Options opt) {
        int a = scores.shape[1], c = scores.shape[2];
        float[] s = scores.data;
        int[] candAnchor = new int[opt.multiLabel ? a * c : a];
        int[] candLabel = new int[candAnchor.length];
        float[] candScore = new float[candAnchor.length];
        int n = 0;
        for (int i = 0; i < a; i++) {
            if (opt.multiLabel) {
                for (int k = 0; k < c; k++) {
                    if (s[i * c + k] > opt.conf) { candAnchor[n] = i; candLabel[n] = k; candScore[n++] = s[i * c + k]; }
                }
            } else {
                int best = 0;
                for (int k = 1; k < c; k++) if (s[i * c + k] > s[i * c + best]) best = k;
                if (s[i * c + best] > opt.conf) { candAnchor[n] = i; candLabel[n] = best; candScore[n++] = s[i * c + best]; }
            }
        }
        Integer[] cand = new Integer[n];
        for (int k = 0; k < n; k++) cand[k] = k;
        if (n > opt.maxCandidates) {  // the best maxCandidates (a stable sort: ties keep anchor order)
            Arrays.sort(cand, (p, q) -> Float.compare(candScore[q], candScore[p]));
            cand = Arrays.copyOf(cand, opt.maxCandidates);
        }
        float[] b = boxes.data;
        float max = Float.NEGATIVE_INFINITY;
        for (Integer k : cand) for (int j = 0; j < 4; j++) max = Math.max(max, b[candAnchor[k] * 4 + j]);
        float[][] shifted = new float[cand.length][4];
        float[] sc = new float[cand.length];
        for (int m = 0; m < cand.length; m++) {
            float offset = (float) candLabel[cand[m]] * (max + 1.0f);
            for (int j = 0; j < 4; j++) shifted[m][j] = b[candAnchor[cand[m]] * 4 + j] + offset;
            sc[m] = candScore[cand[m]];
        }
        List<Detection> out = new ArrayList<>();
        for (int m : nms(shifted, sc, opt.iou)) {
            if (out.size() >= opt.maxDet) break;
            int k = cand[m], anchor = candAnchor[k];
            float[] kp = keypoints == null ? null : votedKeypoints(keypoints, b, s, c, anchor, candLabel[k], candScore[k], opt);
            out.add(detection(b, anchor * 4, candScore[k], candLabel[k], kp, scale));
        }
        return out;
    }

    /** mtnet.decode.vote_keypoints: the (x, y) of every keypoint averaged over the anchors whose score for the
     *  label is above conf and at least half the detection's and whose box overlaps its box by IoU above
     *  keypointVoteIou, weighted by that score (double sums); visibility stays the detection's own anchor's. */
    private static float[] votedKeypoints(Tensor keypoints, float[] b, float[] s, int c, int anchor, int label, float score,
                                          Options opt) {
        int d = keypoints.shape[2];
        float[] kp = Arrays.copyOfRange(keypoints.data, anchor * d, anchor * d + d);
        double[] sum = new double[d];
        double total = 0;
        float half = 0.5f * score;
        for (int i = 0; i < keypoints.shape[1]; i++) {
            float w = s[i * c + label];
            if (w <= opt.conf || w < half || iou(b, anchor * 4, b, i * 4) <= opt.keypointVoteIou) continue;
            for (int k = 0; k < d; k++) sum[k] += (double) keypoints.data[i * d + k] * w;
            total += w;
        }
        for (int k = 0; k < d; k += 3) { kp[k] = (float) (sum[k] / total); kp[k + 1] = (float) (sum[k + 1] / total); }
        return kp;
    }

    /** IoU of the xyxy box at offset p of a and the one at offset q of b (as mtnet.decode.iou_to). */
    static float iou(float[] a, int p, float[] b, int q) {
        float w = Math.max(Math.min(a[p + 2], b[q + 2]) - Math.max(a[p], b[q]), 0f);
        float h = Math.max(Math.min(a[p + 3], b[q + 3]) - Math.max(a[p + 1], b[q + 1]), 0f);
        float inter = w * h;
        float areaA = Math.max(a[p + 2] - a[p], 0f) * Math.max(a[p + 3] - a[p + 1], 0f);
        float areaB = Math.max(b[q + 2] - b[q], 0f) * Math.max(b[q + 3] - b[q + 1], 0f);
        return inter / (areaA + areaB - inter + 1e-9f);
    }

    /** Greedy NMS in descending score order (stable for ties), as mtnet.decode.nms in float32. */
    static int[] nms(float[][] boxes, float[] scores, float iouThreshold) {
        Integer[] order = new Integer[scores.length];
        for (int k = 0; k < order.length; k++) order[k] = k;
        Arrays.sort(order, (p, q) -> Float.compare(scores[q], scores[p]));
        int[] keep = new int[order.length];
        int kept = 0;
        List<Integer> rest = new ArrayList<>(Arrays.asList(order));
        while (!rest.isEmpty()) {
            int i = rest.get(0);
            keep[kept++] = i;
            List<Integer> next = new ArrayList<>();
            for (int r = 1; r < rest.size(); r++) {
                int j = rest.get(r);
                if (iou(boxes[i], 0, boxes[j], 0) <= iouThreshold) next.add(j);
            }
            rest = next;
        }
        return Arrays.copyOf(keep, kept);
    }

    // ---- detections with NMS in the graph (mtnet.decode.decode_nms_outputs)

    private List<Detection> decodeNms(Tensor det, Tensor num, Tensor keypoints, double scale, Options opt) {
        int rows = Math.min((int) num.data[0], det.shape[1]);
        List<Detection> out = new ArrayList<>();
        for (int r = 0; r < rows && out.size() < opt.maxDet; r++) {
            float score = det.data[r * 6 + 4];
            if (score > opt.conf) {
                float[] kp = null;
                if (keypoints != null) {
                    int d = keypoints.shape[2];
                    kp = Arrays.copyOfRange(keypoints.data, r * d, r * d + d);
                }
                out.add(detection(det.data, r * 6, score, Math.round(det.data[r * 6 + 5]), kp, scale));
            }
        }
        return out;
    }

    /** One detection in original-image pixels; ``kp`` (input pixels, K x (x, y, v)) is scaled in place. */
    private Detection detection(float[] boxes, int at, float score, int label, float[] kp, double scale) {
        float f = (float) scale;
        if (kp != null) {
            for (int k = 0; k < kp.length; k += 3) { kp[k] /= f; kp[k + 1] /= f; }
        }
        String name = label < info.detLabels.size() ? info.detLabels.get(label) : String.valueOf(label);
        return new Detection(boxes[at] / f, boxes[at + 1] / f, boxes[at + 2] / f, boxes[at + 3] / f, score, label, name, kp);
    }

    // ---- segmentation (mtnet.decode.decode_segmentation + unletterbox_mask)

    private byte[] segmentation(Tensor seg, double scale, int width, int height) {
        int size = info.imgsz;
        byte[] labels;
        int lh, lw;
        if (seg.shape.length == 3) {  // --seg-output argmax: [1, H, W] class ids
            lh = seg.shape[1];
            lw = seg.shape[2];
            labels = new byte[lh * lw];
            for (int p = 0; p < labels.length; p++) labels[p] = (byte) Math.round(seg.data[p]);
        } else {  // [1, S, h, w] logits: bilinear to the input size, argmax
            int s = seg.shape[1], h = seg.shape[2], w = seg.shape[3];
            float[] up = (h == size && w == size) ? seg.data : upsample(seg.data, s, h, w, size);
            lh = lw = size;
            labels = new byte[size * size];
            for (int p = 0; p < size * size; p++) {
                int best = 0;
                for (int k = 1; k < s; k++) if (up[k * size * size + p] > up[best * size * size + p]) best = k;
                labels[p] = (byte) best;
            }
        }
        return unletterbox(labels, lh, lw, scale, width, height);
    }

    /** Bilinear resize with half-pixel centres and edge clamping, per channel (OpenCV INTER_LINEAR in float32). */
    static float[] upsample(float[] src, int channels, int h, int w, int size) {
        int[] x0 = new int[size], y0 = new int[size];
        float[] fx = new float[size], fy = new float[size];
        taps(w, size, x0, fx);
        taps(h, size, y0, fy);
        float[] out = new float[channels * size * size];
        float[] row0 = new float[size], row1 = new float[size];
        for (int c = 0; c < channels; c++) {
            int base = c * h * w;
            for (int y = 0; y < size; y++) {
                int ya = y0[y], yb = fy[y] == 0f ? ya : ya + 1;
                hpass(src, base + ya * w, x0, fx, row0);
                hpass(src, base + yb * w, x0, fx, row1);
                float b1 = fy[y], b0 = 1f - b1;
                for (int x = 0; x < size; x++) {
                    out[(c * size + y) * size + x] = fy[y] == 0f ? row0[x] : row0[x] * b0 + row1[x] * b1;
                }
            }
        }
        return out;
    }

    private static void taps(int srcSize, int dstSize, int[] index, float[] frac) {
        double scale = 1.0 / ((double) dstSize / srcSize);
        for (int d = 0; d < dstSize; d++) {
            float f = (float) ((d + 0.5) * scale - 0.5);
            int s = (int) Math.floor(f);
            f -= s;
            if (s < 0) { s = 0; f = 0f; }
            if (s >= srcSize - 1) { s = srcSize - 1; f = 0f; }
            index[d] = s;
            frac[d] = f;
        }
    }

    private static void hpass(float[] src, int rowStart, int[] x0, float[] fx, float[] out) {
        for (int x = 0; x < out.length; x++) {
            float a = src[rowStart + x0[x]];
            out[x] = fx[x] == 0f ? a : a * (1f - fx[x]) + src[rowStart + x0[x] + 1] * fx[x];
        }
    }

    /** Crops the letterbox padding and resizes (nearest) to the original size, as mtnet.decode.unletterbox_mask. */
    static byte[] unletterbox(byte[] labels, int lh, int lw, double scale, int width, int height) {
        int nh = Math.min(lh, (int) Math.rint(height * scale)), nw = Math.min(lw, (int) Math.rint(width * scale));
        byte[] out = new byte[width * height];
        double sy = 1.0 / ((double) height / nh), sx = 1.0 / ((double) width / nw);
        for (int y = 0; y < height; y++) {
            int yy = nh == height ? y : Math.min((int) Math.floor(y * sy), nh - 1);
            for (int x = 0; x < width; x++) {
                int xx = nw == width ? x : Math.min((int) Math.floor(x * sx), nw - 1);
                out[y * width + x] = labels[yy * lw + xx];
            }
        }
        return out;
    }
}
