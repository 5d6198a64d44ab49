package dev.mtnet.decoder;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What the decoder needs from a model's metadata: input size and normalisation, tasks, output layouts, labels,
 * keypoint names and skeleton, in-graph NMS settings. Read from model.json, the associated file every mtnet
 * .tflite carries in its standard TFLite metadata (the same document as the labels_*.txt files).
 */
public final class ModelInfo {
    public final int imgsz;
    public final float[] mean;
    public final float[] std;
    /** MediaPipe-target files take pixel / 255 and normalise inside the graph. */
    public final boolean normalizedInGraph;
    public final List<String> tasks;
    public final boolean nmsInGraph;
    public final List<String> detLabels;
    public final List<String> segLabels;
    public final List<String> keypointNames;
    /** Pairs of 0-based keypoint indices to join with lines. */
    public final int[][] skeleton;
    /** Output name -> permutation from this file's layout to the documented (PyTorch) axes. */
    public final Map<String, int[]> toDocumented;

    /** Reads the metadata of a loaded .tflite (the buffer handed to the LiteRT Interpreter). */
    public static ModelInfo fromModel(ByteBuffer model) {
        byte[] json = AssociatedFiles.read(model).get("model.json");
        if (json == null) throw new IllegalArgumentException("the model carries no model.json (export it with mtnet)");
        return fromJson(new String(json, StandardCharsets.UTF_8));
    }

    @SuppressWarnings("unchecked")
    public static ModelInfo fromJson(String text) {
        return new ModelInfo((Map<String, Object>) Json.parse(text));
    }

    @SuppressWarnings("unchecked")
    private ModelInfo(Map<String, Object> doc) {
        Map<String, Object> input = (Map<String, Object>) doc.get("input");
        imgsz = ((Double) input.get("imgsz")).intValue();
        normalizedInGraph = "in_graph".equals(input.get("normalization"));
        mean = floats((List<Object>) input.get("mean"));
        std = floats((List<Object>) input.get("std"));
        tasks = strings((List<Object>) doc.get("tasks"));
        nmsInGraph = Boolean.TRUE.equals(doc.get("nms_in_graph"));
        Map<String, Object> labels = (Map<String, Object>) doc.get("labels");
        detLabels = strings((List<Object>) labels.get("det"));
        segLabels = strings((List<Object>) labels.get("seg"));
        Map<String, Object> kp = (Map<String, Object>) doc.get("keypoints");
        keypointNames = strings((List<Object>) kp.get("names"));
        List<Object> sk = kp.get("skeleton") == null ? new ArrayList<>() : (List<Object>) kp.get("skeleton");
        skeleton = new int[sk.size()][];
        for (int k = 0; k < sk.size(); k++) skeleton[k] = ints((List<Object>) sk.get(k));
        toDocumented = new HashMap<>();
        Map<String, Object> io = (Map<String, Object>) doc.get("io");
        if (io != null) {
            for (Object o : (List<Object>) io.get("outputs")) {
                Map<String, Object> out = (Map<String, Object>) o;
                if (out.get("to_torch") != null) {
                    toDocumented.put((String) out.get("name"), ints((List<Object>) out.get("to_torch")));
                }
            }
        }
    }

    private static float[] floats(List<Object> xs) {
        float[] out = new float[xs.size()];
        for (int k = 0; k < out.length; k++) out[k] = ((Double) xs.get(k)).floatValue();
        return out;
    }

    private static int[] ints(List<Object> xs) {
        int[] out = new int[xs.size()];
        for (int k = 0; k < out.length; k++) out[k] = ((Double) xs.get(k)).intValue();
        return out;
    }

    private static List<String> strings(List<Object> xs) {
        List<String> out = new ArrayList<>();
        if (xs != null) for (Object x : xs) out.add((String) x);
        return out;
    }
}
