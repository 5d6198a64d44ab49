package dev.mtnet.decoder;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The associated files of a .tflite with standard TFLite Model Metadata: an uncompressed zip appended to the
 * flatbuffer (what tflite-support's MetadataPopulator and mtnet's exporter write). Reads straight from the model
 * buffer the app already holds (e.g. a memory-mapped asset), without java.util.zip, which needs a file.
 */
public final class AssociatedFiles {
    private AssociatedFiles() {}

    /** File name -> contents; throws IllegalArgumentException when the buffer carries no such zip. */
    public static Map<String, byte[]> read(ByteBuffer model) {
        ByteBuffer b = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int n = b.limit();
        int eocd = -1;
        for (int p = n - 22; p >= Math.max(0, n - 22 - 65535); p--) {
            if (b.getInt(p) == 0x06054b50) { eocd = p; break; }
        }
        if (eocd < 0) throw new IllegalArgumentException("no associated files (export the model with mtnet export)");
        int count = b.getShort(eocd + 10) & 0xffff;
        long cdSize = b.getInt(eocd + 12) & 0xffffffffL;
        long cdOffset = b.getInt(eocd + 16) & 0xffffffffL;
        // offsets may count from the start of the file or of the appended zip: find the central directory
        long base = (eocd - cdSize) - cdOffset;
        Map<String, byte[]> files = new LinkedHashMap<>();
        int p = (int) (base + cdOffset);
        for (int k = 0; k < count; k++) {
            if (b.getInt(p) != 0x02014b50) throw new IllegalArgumentException("corrupt associated-file directory");
            int method = b.getShort(p + 10) & 0xffff;
            int size = b.getInt(p + 20);
            int nameLen = b.getShort(p + 28) & 0xffff;
            int extraLen = b.getShort(p + 30) & 0xffff;
            int commentLen = b.getShort(p + 32) & 0xffff;
            long local = (b.getInt(p + 42) & 0xffffffffL) + base;
            byte[] name = new byte[nameLen];
            for (int j = 0; j < nameLen; j++) name[j] = b.get(p + 46 + j);
            if (method != 0) throw new IllegalArgumentException("associated files must be stored uncompressed");
            int lp = (int) local;
            int data = lp + 30 + (b.getShort(lp + 26) & 0xffff) + (b.getShort(lp + 28) & 0xffff);
            byte[] out = new byte[size];
            for (int j = 0; j < size; j++) out[j] = b.get(data + j);
            files.put(new String(name, StandardCharsets.UTF_8), out);
            p += 46 + nameLen + extraLen + commentLen;
        }
        return files;
    }
}
