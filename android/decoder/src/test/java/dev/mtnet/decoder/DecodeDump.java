package dev.mtnet.decoder;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Host harness for tests/test_app_tflite.py: decodes output tensors dumped from the LiteRT interpreter with the
 * model's own metadata and writes the results for comparison with mtnet.decode.
 *
 * <p>Usage: DecodeDump MODEL.tflite DIR conf iou maxDet multiLabel scale width height. DIR holds outputs.txt
 * (lines "name d0 d1 ...") with NAME.bin (float32 little-endian) and optionally image.argb (letterboxed pixels,
 * int32 little-endian). Writes DIR/detections.txt (one line per detection, floats as raw int bits in hex),
 * DIR/mask.bin and DIR/input.bin.
 */
public final class DecodeDump {
    public static void main(String[] args) throws IOException {
        ByteBuffer model = ByteBuffer.wrap(Files.readAllBytes(Paths.get(args[0])));
        Path dir = Paths.get(args[1]);
        Decoder.Options opt = new Decoder.Options();
        opt.conf = Float.parseFloat(args[2]);
        opt.iou = Float.parseFloat(args[3]);
        opt.maxDet = Integer.parseInt(args[4]);
        opt.multiLabel = Boolean.parseBoolean(args[5]);
        double scale = Double.parseDouble(args[6]);
        int width = Integer.parseInt(args[7]), height = Integer.parseInt(args[8]);
        Decoder decoder = new Decoder(ModelInfo.fromModel(model));

        Map<String, Tensor> outputs = new HashMap<>();
        for (String line : Files.readAllLines(dir.resolve("outputs.txt"))) {
            String[] parts = line.trim().split(" ");
            int[] shape = new int[parts.length - 1];
            for (int k = 1; k < parts.length; k++) shape[k - 1] = Integer.parseInt(parts[k]);
            outputs.put(parts[0], new Tensor(floats(dir.resolve(parts[0] + ".bin")), shape));
        }
        Decoder.Result result = decoder.decode(outputs, scale, width, height, opt);
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(dir.resolve("detections.txt")))) {
            for (Detection d : result.detections) {
                StringBuilder b = new StringBuilder().append(d.label).append(' ').append(d.labelName.replace(' ', '_'));
                for (float v : new float[] {d.score, d.x1, d.y1, d.x2, d.y2}) b.append(' ').append(hex(v));
                if (d.keypoints != null) for (float v : d.keypoints) b.append(' ').append(hex(v));
                w.println(b);
            }
        }
        if (result.mask != null) Files.write(dir.resolve("mask.bin"), result.mask);
        Path image = dir.resolve("image.argb");
        if (Files.exists(image)) {
            ByteBuffer px = ByteBuffer.wrap(Files.readAllBytes(image)).order(ByteOrder.LITTLE_ENDIAN);
            int[] argb = new int[px.remaining() / 4];
            px.asIntBuffer().get(argb);
            float[] x = decoder.input(argb);
            ByteBuffer out = ByteBuffer.allocate(x.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            out.asFloatBuffer().put(x);
            Files.write(dir.resolve("input.bin"), out.array());
        }
        List<String> sk = new java.util.ArrayList<>();
        for (int[] e : decoder.info().skeleton) sk.add(e[0] + "-" + e[1]);
        Files.write(dir.resolve("skeleton.txt"), List.of(String.join(" ", sk)));
    }

    private static String hex(float v) {
        return Integer.toHexString(Float.floatToRawIntBits(v));
    }

    private static float[] floats(Path p) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }
}
